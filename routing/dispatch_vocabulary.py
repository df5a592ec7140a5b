"""The colloquial vocabulary that knowledge editors (知识采集) maintain, as plain data.

Two CSV files with a header row (the demo copies are in ``routing/data/``):

``vocabulary.csv``: ``kind,heard,means,note``

- ``synonym``: what callers say (``heard``: 煤气味, 没暖气, 楼上扔东西) and the directory
  words it means (``means``, separated by ``|``: 燃气泄漏|漏气). ``heard`` is found anywhere
  in the summary, so it may span words;
- ``misspelling``: a wrong writing (``heard``: 暧气) and the right one (``means``: 暖气),
  replaced before anything else reads the text;
- ``filler``: words that carry nothing (那个, 就是说, 我跟你说): dropped.

``places.csv``: ``name,county,township,kind``: a name said by callers (县区, 街道/乡镇, a
street, a well-known place), the county unit it lies in, the street/township when it
names one (as the department is named: 八廓街道, 羊八井镇), and the kind (``county``,
``township``, ``place``). ``county`` may be empty for a name that is in Lhasa but in no
county unit of the directory (柳梧新区).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from routing.dispatch_directory import csv_rows


class WordKind(StrEnum):
    SYNONYM = "synonym"
    MISSPELLING = "misspelling"
    FILLER = "filler"


class PlaceKind(StrEnum):
    COUNTY = "county"
    TOWNSHIP = "township"
    PLACE = "place"


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    county: str | None
    township: str | None
    kind: PlaceKind


@dataclass(frozen=True, slots=True)
class Vocabulary:
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (heard, directory words)
    misspellings: tuple[tuple[str, str], ...] = ()  # (wrong, right)
    fillers: tuple[str, ...] = ()
    places: tuple[Place, ...] = ()


class VocabularyError(ValueError):
    """A row of a vocabulary file that cannot be used; says which line (header = line 1)."""


def _means(value: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in value.split("|") if w.strip())


def vocabulary_from_rows(
    words: Iterable[Mapping[str, str]], places: Iterable[Mapping[str, str]] = ()
) -> Vocabulary:
    synonyms: list[tuple[str, tuple[str, ...]]] = []
    misspellings: list[tuple[str, str]] = []
    fillers: list[str] = []
    for line, row in enumerate(words, start=2):
        heard = (row.get("heard") or "").strip()
        raw_kind = (row.get("kind") or "").strip()
        if not heard or raw_kind not in WordKind.__members__.values():
            raise VocabularyError(f"vocabulary line {line}: need a kind and a heard word")
        kind = WordKind(raw_kind)
        means = _means(row.get("means") or "")
        if kind is WordKind.FILLER:
            fillers.append(heard)
        elif not means:
            raise VocabularyError(f"vocabulary line {line}: {heard!r} means nothing")
        elif kind is WordKind.SYNONYM:
            synonyms.append((heard, means))
        else:
            misspellings.append((heard, means[0]))
    found: list[Place] = []
    for line, row in enumerate(places, start=2):
        name = (row.get("name") or "").strip()
        raw_kind = (row.get("kind") or "").strip()
        if not name or raw_kind not in PlaceKind.__members__.values():
            raise VocabularyError(f"places line {line}: need a name and a kind")
        county = (row.get("county") or "").strip() or None
        township = (row.get("township") or "").strip() or None
        found.append(Place(name, county, township, PlaceKind(raw_kind)))
    return Vocabulary(tuple(synonyms), tuple(misspellings), tuple(fillers), tuple(found))


def parse_vocabulary(vocabulary_csv: str, places_csv: str = "") -> Vocabulary:
    """The vocabulary from the text of ``vocabulary.csv`` and ``places.csv``."""
    places = csv_rows(places_csv) if places_csv.strip() else []
    return vocabulary_from_rows(csv_rows(vocabulary_csv), places)
