"""Which department an item goes to for a caller's location (the directory's README rule).

- ``city`` item: the city department with the item's role (there is exactly one);
- ``county`` item: the department of the caller's county unit with the item's role;
- ``township`` item: the caller's street/township office when the street or township is
  known and the directory has its office; otherwise the county unit's 政府办, which forwards
  it;
- county unit unknown and a county or township item: not resolved, the call-taker asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from routing.dispatch_directory import (
    COUNTY_OFFICE_ROLE,
    Department,
    Directory,
    Item,
    Level,
)
from routing.dispatch_places import Location


class Resolved(StrEnum):
    CITY = "city"  # the city department with the role
    COUNTY = "county"  # the county unit's department with the role
    TOWNSHIP = "township"  # the caller's street/township office
    COUNTY_OFFICE = "county_office"  # township unknown (or no office): the county's 政府办
    ASK_COUNTY = "ask_county"  # county unknown: the call-taker asks the caller
    NO_DEPARTMENT = "no_department"  # the directory has no department for it (a data error)


@dataclass(frozen=True, slots=True)
class Resolution:
    how: Resolved
    department: Department | None

    @property
    def is_resolved(self) -> bool:
        return self.department is not None

    @property
    def department_code(self) -> str | None:
        return self.department.code if self.department else None


def _township_key(name: str) -> str:
    for suffix in ("街道办事处", "街道", "镇", "乡"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name.removesuffix(suffix)
    return name


class DepartmentResolver:
    def __init__(self, directory: Directory) -> None:
        self.city: dict[str, Department] = {}
        self.county: dict[tuple[str, str], Department] = {}
        self.township: dict[tuple[str, str], Department] = {}
        for d in directory.departments:
            if d.level is Level.CITY:
                self.city.setdefault(d.role, d)
            elif d.level is Level.COUNTY and d.county:
                self.county.setdefault((d.county, d.role), d)
            elif d.level is Level.TOWNSHIP and d.county and d.township:
                self.township.setdefault((d.county, _township_key(d.township)), d)

    def resolve(self, item: Item, location: Location) -> Resolution:
        if item.level is Level.CITY:
            return self._found(Resolved.CITY, self.city.get(item.role))
        if location.county is None:
            return Resolution(Resolved.ASK_COUNTY, None)
        if item.level is Level.COUNTY:
            return self._found(Resolved.COUNTY, self.county.get((location.county, item.role)))
        if location.township is not None:
            office = self.township.get((location.county, _township_key(location.township)))
            if office is not None:
                return Resolution(Resolved.TOWNSHIP, office)
        office = self.county.get((location.county, COUNTY_OFFICE_ROLE))
        return self._found(Resolved.COUNTY_OFFICE, office)

    @staticmethod
    def _found(how: Resolved, department: Department | None) -> Resolution:
        return Resolution(how if department else Resolved.NO_DEPARTMENT, department)
