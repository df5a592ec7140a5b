"""Where an upheld objection re-dispatches an order: an item of the current directory
version, whose department is resolved for the order's place by the directory's own rule
(``routing.dispatch_departments.DepartmentResolver``, as the recommender resolves it), or
a department picked directly.

The reviewer's choice travels as one form value, ``"<item code>|<department code>"``,
either side may be empty: an item alone is resolved when the form is sent, a department
alone is dispatched without an item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.dispatch_departments import DepartmentResolver, Resolved
from routing.dispatch_directory import Department, Directory, Item, Level
from routing.dispatch_places import Location
from tickets import directory as directory_store
from tickets.models import DirectoryDepartment, DirectoryItem, DirectoryVersion, WorkOrder

MAX_RESULTS = 20
HOW_RESOLVED = {
    Resolved.CITY: "the city's department",
    Resolved.COUNTY: "the county's department",
    Resolved.TOWNSHIP: "the street's or township's office",
    Resolved.COUNTY_OFFICE: "the county's 政府办: street or township unknown",
}


class TargetProblem(ValueError):
    """The choice cannot be dispatched to; the message says what to pick instead."""


@dataclass(frozen=True)
class Target:
    """An item (or none) and the department it goes to (None: it does not resolve)."""

    item: DirectoryItem | None
    department: DirectoryDepartment | None
    note: str = ""  # how the department was found
    words: tuple[str, ...] = ()  # the words the recommender matched (a suggestion)

    @property
    def value(self) -> str:
        item = self.item.code if self.item else ""
        department = self.department.code if self.department else ""
        return f"{item}|{department}"


class Targets:
    """The current directory version's items and departments, resolved for one order."""

    def __init__(self, order: WorkOrder, *, session: Session) -> None:
        self.order = order
        self.session = session
        self.version: DirectoryVersion = directory_store.get_current_version(session=session)
        self._departments = list(
            session.scalars(
                select(DirectoryDepartment).where(DirectoryDepartment.version_id == self.version.id)
            )
        )
        self._by_code = {department.code: department for department in self._departments}
        self._resolver = DepartmentResolver(
            Directory(categories=(), departments=tuple(map(_plain, self._departments)), items=())
        )
        self.location = Location(order.district or None, order.street or None)

    def for_item(self, item: DirectoryItem) -> Target:
        resolution = self._resolver.resolve(_plain_item(item), self.location)
        if resolution.department is None:
            where = self.order.district or "an unknown county"
            return Target(item, None, f"does not resolve for {where}: pick a department")
        how = HOW_RESOLVED.get(resolution.how, resolution.how.value)
        return Target(item, self._by_code[resolution.department.code], how)

    def suggestions(self, suggested: Iterable[dict[str, Any]]) -> list[Target]:
        """The objection's suggested alternatives, in the current version."""
        targets = []
        for entry in suggested:
            item = self.item(entry.get("item_code") or "")
            if item is not None:
                words = tuple(entry.get("matched_words") or ())
                targets.append(replace(self.for_item(item), words=words))
        return targets

    def item(self, code: str) -> DirectoryItem | None:
        if not code:
            return None
        return directory_store.find_item(self.version, code, session=self.session)

    def search_items(self, query: str) -> list[Target]:
        if not query.strip():
            return []
        items = directory_store.search_items(self.version, session=self.session, query=query)
        return [self.for_item(item) for item in items[:MAX_RESULTS]]

    def search_departments(self, query: str) -> list[Target]:
        if not query.strip():
            return []
        found = directory_store.search_departments(self.version, session=self.session, query=query)
        return [Target(None, department, "picked directly") for department in found[:MAX_RESULTS]]

    def department(self, code: str) -> DirectoryDepartment | None:
        return self._by_code.get(code)

    def parse(self, value: str) -> Target:
        """The reviewer's choice (``item|department``) in the current version."""
        item_code, _, department_code = (value or "").strip().partition("|")
        item = self.item(item_code.strip())
        if item_code.strip() and item is None:
            raise TargetProblem(f"There is no item {item_code.strip()} in the current directory.")
        if department_code.strip():
            department = self.department(department_code.strip())
            if department is None:
                raise TargetProblem(
                    f"There is no department {department_code.strip()} in the current directory."
                )
            return Target(item, department, "picked directly")
        if item is None:
            raise TargetProblem("Choose a suggested item, or an item or department you searched.")
        target = self.for_item(item)
        if target.department is None:
            raise TargetProblem(f"Item {item.code} {target.note}.")
        return target


def _plain(department: DirectoryDepartment) -> Department:
    return Department(
        code=department.code,
        name=department.name,
        level=Level(department.level.value),
        county=department.county,
        role=department.role,
    )


def _plain_item(item: DirectoryItem) -> Item:
    return Item(
        code=item.code,
        category="",
        title=item.title,
        description="",
        keywords=(),
        level=Level(item.level.value),
        role=item.role,
        sla_days=item.sla_days,
        is_urgent=item.is_urgent,
    )
