"""The caller's location: given by the call-taker, or found in the summary.

``Location`` holds the county unit (城关区 ... 墨竹工卡县) and the street/township, each
optional. ``PlaceFinder`` finds the vocabulary's place names in a summary, longest name
first and without overlaps (达孜区德庆镇 is one place, not 达孜 and 德庆), and turns them
into a location: a place that names a street/township gives both; otherwise the first
county named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from routing.dispatch_vocabulary import Place


@dataclass(frozen=True, slots=True)
class Location:
    county: str | None = None
    township: str | None = None

    @property
    def is_known(self) -> bool:
        return self.county is not None


@dataclass(frozen=True, slots=True)
class FoundPlaces:
    places: tuple[Place, ...]
    location: Location


class PlaceFinder:
    def __init__(self, places: Iterable[Place]) -> None:
        by_name: dict[str, Place] = {}
        for place in places:
            by_name.setdefault(place.name, place)
        self.places = by_name
        self.names = sorted(by_name, key=lambda n: (-len(n), n))

    def find(self, text: str) -> FoundPlaces:
        taken = [False] * len(text)
        hits: list[tuple[int, Place]] = []
        for name in self.names:
            start = text.find(name)
            while start != -1:
                end = start + len(name)
                if not any(taken[start:end]):
                    taken[start:end] = [True] * len(name)
                    hits.append((start, self.places[name]))
                start = text.find(name, end)
        found = tuple(place for _, place in sorted(hits, key=lambda h: h[0]))
        return FoundPlaces(found, self.location_of(found))

    @staticmethod
    def location_of(found: tuple[Place, ...]) -> Location:
        for place in found:
            if place.township is not None and place.county is not None:
                return Location(place.county, place.township)
        for place in found:
            if place.county is not None:
                return Location(place.county)
        return Location()
