"""The duty directory (接诉即办职责清单) as plain data: categories, departments, items.

Built by ``parse_directory`` from the text of the three CSV files (the format of the sample
directory's README; the demo copy is in ``routing/data/directory/``), or by
``directory_from_rows`` from rows that ``tickets/`` reads out of its tables. Nothing here
opens a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

TOWNSHIP_ROLE = "街道办/乡镇政府"
COUNTY_OFFICE_ROLE = "政府办"  # takes township items when the township is not known


class Level(StrEnum):
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    level: Level
    county: str | None  # the county unit in Chinese; None for a city department
    role: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))

    @property
    def township(self) -> str | None:
        """The street/township a township office serves: 城关区八廓街道办事处 -> 八廓街道."""
        if self.level is not Level.TOWNSHIP:
            return None
        name = self.name.removeprefix(self.county or "")
        for suffix in ("办事处", "人民政府"):
            name = name.removesuffix(suffix)
        return name


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    category: str
    title: str
    description: str
    keywords: tuple[str, ...]
    level: Level
    role: str
    sla_days: int
    is_urgent: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))


@dataclass(frozen=True)
class Directory:
    categories: tuple[Category, ...]
    departments: tuple[Department, ...]
    items: tuple[Item, ...]
    _items: dict[str, Item] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_items", {item.code: item for item in self.items})

    def item(self, code: str) -> Item:
        """The item with this code (KeyError when there is none)."""
        return self._items[code]


def _keywords(value: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in value.split("|") if word.strip())


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def directory_from_rows(
    categories: Iterable[Mapping[str, str]],
    departments: Iterable[Mapping[str, str]],
    items: Iterable[Mapping[str, str]],
) -> Directory:
    """The directory from rows keyed by the CSV column names (extra columns are ignored)."""
    return Directory(
        categories=tuple(
            Category(r["code"].strip(), r["name"].strip(), (r.get("description") or "").strip())
            for r in categories
        ),
        departments=tuple(
            Department(
                code=r["code"].strip(),
                name=r["name"].strip(),
                level=Level(r["level"].strip()),
                county=_blank_to_none(r.get("county")),
                role=r["role"].strip(),
            )
            for r in departments
        ),
        items=tuple(
            Item(
                code=r["code"].strip(),
                category=r["category"].strip(),
                title=r["title"].strip(),
                description=(r.get("description") or "").strip(),
                keywords=_keywords(r.get("keywords") or ""),
                level=Level(r["level"].strip()),
                role=r["role"].strip(),
                sla_days=int(r["sla_days"]),
                is_urgent=r["urgent"].strip().lower() == "yes",
            )
            for r in items
        ),
    )


def csv_rows(text: str) -> list[dict[str, str]]:
    """The rows of a CSV text with a header row (a leading BOM is dropped)."""
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def parse_directory(categories_csv: str, departments_csv: str, items_csv: str) -> Directory:
    """The directory from the text of ``categories.csv``, ``departments.csv``, ``items.csv``."""
    return directory_from_rows(
        csv_rows(categories_csv), csv_rows(departments_csv), csv_rows(items_csv)
    )
