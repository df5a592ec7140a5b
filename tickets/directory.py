"""The duty directory in the ticket store: versions, import, browse, edit.

Versioning is copy-on-write of the whole directory: an import, and every edit from the
admin pages, writes a new ``DirectoryVersion`` with all its categories, departments and
items, and makes it the current one. Rows of a version are never updated or deleted, so a
work order that keeps the ids of the item and department it was dispatched to keeps what
they said then (about 1,040 rows per version: a few hundred kilobytes a change). Each new
version records who made it, when, from which files (name and SHA-256) and, in
``directory_changes``, what it changed against the version it replaced.

Service functions take the session as a keyword and never commit; a refused import or
edit raises before anything is written, and the caller's transaction makes the new
version all or nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tickets.db import utcnow
from tickets.directory_import import (
    CategoryRecord,
    DepartmentRecord,
    DirectoryInvalid,
    ItemRecord,
    Problem,
    Snapshot,
    check_snapshot,
    parse_department,
    parse_item,
    read_directory,
)
from tickets.models import (
    DirectoryCategory,
    DirectoryChange,
    DirectoryDepartment,
    DirectoryItem,
    DirectoryLevel,
    DirectoryVersion,
    DirectoryVersionKind,
)


class DirectoryError(ValueError):
    """Something asked of the directory that cannot be done; the message says why."""


class DirectoryNotFound(DirectoryError):
    pass


class DirectoryChanged(DirectoryError):
    """The directory changed since the version an edit was based on (optimistic lock)."""


# -- queries --------------------------------------------------------------------------------


def find_current_version(*, session: Session) -> DirectoryVersion | None:
    return session.scalar(select(DirectoryVersion).where(DirectoryVersion.is_current.is_(True)))


def get_current_version(*, session: Session) -> DirectoryVersion:
    version = find_current_version(session=session)
    if version is None:
        raise DirectoryNotFound("no duty directory has been imported yet")
    return version


def get_version(version_id: int, *, session: Session) -> DirectoryVersion:
    version = session.get(DirectoryVersion, version_id)
    if version is None:
        raise DirectoryNotFound(f"there is no directory version {version_id}")
    return version


def list_versions(*, session: Session) -> list[DirectoryVersion]:
    """Every version, newest first."""
    return list(session.scalars(select(DirectoryVersion).order_by(DirectoryVersion.id.desc())))


def list_categories(version: DirectoryVersion, *, session: Session) -> list[DirectoryCategory]:
    return list(
        session.scalars(
            select(DirectoryCategory)
            .where(DirectoryCategory.version_id == version.id)
            .order_by(DirectoryCategory.code)
        )
    )


def search_items(
    version: DirectoryVersion,
    *,
    session: Session,
    query: str = "",
    category: str | None = None,
    level: DirectoryLevel | None = None,
) -> list[DirectoryItem]:
    """The version's items whose code, title or keywords contain ``query`` (any case), in
    ``category`` (its code) and at ``level`` when given; by code."""
    statement = select(DirectoryItem).where(DirectoryItem.version_id == version.id)
    if query.strip():
        statement = statement.where(
            _containing(query, DirectoryItem.code, DirectoryItem.title, DirectoryItem.keywords)
        )
    if category:
        statement = statement.join(DirectoryItem.category).where(DirectoryCategory.code == category)
    if level is not None:
        statement = statement.where(DirectoryItem.level == level)
    return list(session.scalars(statement.order_by(DirectoryItem.code)))


def search_departments(
    version: DirectoryVersion,
    *,
    session: Session,
    query: str = "",
    level: DirectoryLevel | None = None,
    county: str | None = None,
) -> list[DirectoryDepartment]:
    """The version's departments whose code, name or role contain ``query``; by code."""
    statement = select(DirectoryDepartment).where(DirectoryDepartment.version_id == version.id)
    if query.strip():
        statement = statement.where(
            _containing(
                query, DirectoryDepartment.code, DirectoryDepartment.name, DirectoryDepartment.role
            )
        )
    if level is not None:
        statement = statement.where(DirectoryDepartment.level == level)
    if county:
        statement = statement.where(DirectoryDepartment.county == county)
    return list(session.scalars(statement.order_by(DirectoryDepartment.code)))


def find_item(version: DirectoryVersion, code: str, *, session: Session) -> DirectoryItem | None:
    return session.scalar(
        select(DirectoryItem).where(
            DirectoryItem.version_id == version.id, DirectoryItem.code == code
        )
    )


def find_department(
    version: DirectoryVersion, code: str, *, session: Session
) -> DirectoryDepartment | None:
    return session.scalar(
        select(DirectoryDepartment).where(
            DirectoryDepartment.version_id == version.id, DirectoryDepartment.code == code
        )
    )


def changes_of(entity: str, code: str, *, session: Session) -> list[DirectoryChange]:
    """The audit of one item or department across versions, newest first."""
    return list(
        session.scalars(
            select(DirectoryChange)
            .where(DirectoryChange.entity == entity, DirectoryChange.code == code)
            .order_by(DirectoryChange.id.desc())
        )
    )


def version_changes(version: DirectoryVersion, *, session: Session) -> list[DirectoryChange]:
    return list(
        session.scalars(
            select(DirectoryChange)
            .where(DirectoryChange.version_id == version.id)
            .order_by(DirectoryChange.entity, DirectoryChange.code)
        )
    )


@dataclass(frozen=True)
class Summary:
    """What a version holds, for the CLI and the admin pages."""

    version: DirectoryVersion
    categories: list[tuple[str, str, int]]  # code, name, items
    items_by_level: dict[str, int]
    urgent_items: int
    departments_by_level: dict[str, int]
    county_units: list[str]

    def lines(self) -> list[str]:
        v = self.version
        levels = ", ".join(f"{n} {level}" for level, n in self.items_by_level.items())
        departments = ", ".join(f"{n} {level}" for level, n in self.departments_by_level.items())
        lines = [
            f"version {v.id}{' (current)' if v.is_current else ''}: {v.kind.value}"
            f" by {v.created_by} at {v.created_at:%Y-%m-%d %H:%M} UTC"
            + (f", based on version {v.based_on_id}" if v.based_on_id else ""),
            f"  {v.category_count} categories, {v.department_count} departments"
            f" ({departments}), {v.item_count} items ({levels}; {self.urgent_items} urgent)",
            f"  county units: {', '.join(self.county_units) or '-'}",
        ]
        lines += [f"  source: {s['file']} sha256 {s['sha256']}" for s in v.source]
        if v.note:
            lines.append(f"  note: {v.note}")
        lines += [f"  {code} {name}: {count} items" for code, name, count in self.categories]
        return lines


def summarize(version: DirectoryVersion, *, session: Session) -> Summary:
    per_category = Counter(
        dict(
            session.execute(
                select(DirectoryItem.category_id, func.count())
                .where(DirectoryItem.version_id == version.id)
                .group_by(DirectoryItem.category_id)
            ).all()
        )
    )
    categories = [
        (c.code, c.name, per_category[c.id]) for c in list_categories(version, session=session)
    ]
    item_levels = Counter(
        dict(
            session.execute(
                select(DirectoryItem.level, func.count())
                .where(DirectoryItem.version_id == version.id)
                .group_by(DirectoryItem.level)
            ).all()
        )
    )
    department_levels = Counter(
        dict(
            session.execute(
                select(DirectoryDepartment.level, func.count())
                .where(DirectoryDepartment.version_id == version.id)
                .group_by(DirectoryDepartment.level)
            ).all()
        )
    )
    urgent = session.scalar(
        select(func.count()).where(
            DirectoryItem.version_id == version.id, DirectoryItem.is_urgent.is_(True)
        )
    )
    units = session.scalars(
        select(DirectoryDepartment.county)
        .where(
            DirectoryDepartment.version_id == version.id, DirectoryDepartment.county.is_not(None)
        )
        .distinct()
        .order_by(DirectoryDepartment.county)
    )
    return Summary(
        version=version,
        categories=categories,
        items_by_level={level.value: item_levels[level] for level in DirectoryLevel},
        urgent_items=urgent or 0,
        departments_by_level={level.value: department_levels[level] for level in DirectoryLevel},
        county_units=[unit for unit in units if unit],
    )


def load_snapshot(version: DirectoryVersion, *, session: Session) -> Snapshot:
    """A stored version as records (what routing and the edit checks read)."""
    categories = list_categories(version, session=session)
    codes = {c.id: c.code for c in categories}
    departments = session.scalars(
        select(DirectoryDepartment)
        .where(DirectoryDepartment.version_id == version.id)
        .order_by(DirectoryDepartment.id)
    )
    items = session.scalars(
        select(DirectoryItem)
        .where(DirectoryItem.version_id == version.id)
        .order_by(DirectoryItem.id)
    )
    return Snapshot(
        categories=tuple(CategoryRecord(c.code, c.name, c.description) for c in categories),
        departments=tuple(
            DepartmentRecord(
                d.code, d.name, d.level, d.county, d.role, d.phone_number, d.sms_contact_number
            )
            for d in departments
        ),
        items=tuple(
            ItemRecord(
                i.code,
                codes[i.category_id],
                i.title,
                i.description,
                tuple(i.keyword_list),
                i.level,
                i.role,
                i.sla_days,
                i.is_urgent,
            )
            for i in items
        ),
    )


# -- changes --------------------------------------------------------------------------------


def import_directory(
    files: Mapping[str, bytes],
    *,
    session: Session,
    actor: str,
    note: str = "",
    file_names: Mapping[str, str] | None = None,
) -> DirectoryVersion:
    """A new current version from the three CSV files (``categories.csv``, ... → bytes;
    ``file_names`` the names they came under, for the record). DirectoryInvalid, before
    anything is written, when a file is wrong."""
    snapshot = read_directory(files)
    source = [
        {
            "file": (file_names or {}).get(name, name),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for name, data in sorted(files.items())
    ]
    return _store(
        snapshot,
        kind=DirectoryVersionKind.IMPORT,
        session=session,
        actor=actor,
        note=note,
        source=source,
    )


def edit_item(
    code: str,
    values: Mapping[str, str],
    *,
    based_on: int,
    session: Session,
    actor: str,
    note: str = "",
) -> DirectoryVersion | None:
    """Change one item of the current version (``values`` as the CSV's columns; code and
    category stay): a new current version, or None when nothing changed. DirectoryInvalid
    for a bad value, DirectoryChanged when ``based_on`` is no longer current."""
    version, snapshot = _editable(based_on, session=session)
    old = next((item for item in snapshot.items if item.code == code), None)
    if old is None:
        raise DirectoryNotFound(f"version {version.id} has no item {code}")
    problems: list[Problem] = []
    record = parse_item({**values, "code": old.code, "category": old.category}, problems=problems)
    if record is None:
        raise DirectoryInvalid(problems)
    if record == old:
        return None
    return _store_edit(snapshot.with_item(record), version, session=session, actor=actor, note=note)


def edit_department(
    code: str,
    values: Mapping[str, str],
    *,
    based_on: int,
    session: Session,
    actor: str,
    note: str = "",
) -> DirectoryVersion | None:
    """Change one department of the current version (``values`` as the CSV's columns; the
    code stays); as ``edit_item``."""
    version, snapshot = _editable(based_on, session=session)
    old = next((d for d in snapshot.departments if d.code == code), None)
    if old is None:
        raise DirectoryNotFound(f"version {version.id} has no department {code}")
    problems: list[Problem] = []
    record = parse_department({**values, "code": old.code}, problems=problems)
    if record is None:
        raise DirectoryInvalid(problems)
    if record == old:
        return None
    return _store_edit(
        snapshot.with_department(record), version, session=session, actor=actor, note=note
    )


def item_values(item: DirectoryItem) -> dict[str, str]:
    """An item as the CSV's columns (what the edit form starts from)."""
    return {
        "code": item.code,
        "category": item.category.code,
        "title": item.title,
        "description": item.description,
        "keywords": item.keywords,
        "level": item.level.value,
        "role": item.role,
        "sla_days": str(item.sla_days),
        "urgent": "yes" if item.is_urgent else "no",
    }


def department_values(department: DirectoryDepartment) -> dict[str, str]:
    return {
        "code": department.code,
        "name": department.name,
        "level": department.level.value,
        "county": department.county or "",
        "role": department.role,
        "phone": department.phone_number,
        "sms_contact": department.sms_contact_number,
    }


def _editable(based_on: int, *, session: Session) -> tuple[DirectoryVersion, Snapshot]:
    version = get_current_version(session=session)
    if version.id != based_on:
        raise DirectoryChanged(
            f"the directory changed since you opened it (version {based_on} → {version.id}):"
            " look at the change and make yours again"
        )
    return version, load_snapshot(version, session=session)


def _store_edit(
    snapshot: Snapshot, base: DirectoryVersion, *, session: Session, actor: str, note: str
) -> DirectoryVersion:
    problems = check_snapshot(snapshot)
    if problems:
        raise DirectoryInvalid(problems)
    return _store(
        snapshot,
        kind=DirectoryVersionKind.EDIT,
        session=session,
        actor=actor,
        note=note,
        source=[],
        expected_current=base,
    )


def _store(
    snapshot: Snapshot,
    *,
    kind: DirectoryVersionKind,
    session: Session,
    actor: str,
    note: str,
    source: list[dict[str, str]],
    expected_current: DirectoryVersion | None = None,
) -> DirectoryVersion:
    """Write ``snapshot`` as the new current version. The previous one stops being current
    by a compare-and-set UPDATE, so two changes at once cannot both win: the loser gets
    DirectoryChanged (and the partial unique index backs this up)."""
    previous = expected_current or find_current_version(session=session)
    if previous is not None:
        switched = session.execute(
            update(DirectoryVersion)
            .where(DirectoryVersion.id == previous.id, DirectoryVersion.is_current.is_(True))
            .values(is_current=False)
        )
        if switched.rowcount != 1:  # type: ignore[attr-defined]
            raise DirectoryChanged("another directory change was saved at the same time")
    now = utcnow()
    version = DirectoryVersion(
        kind=kind,
        based_on_id=previous.id if previous is not None else None,
        created_at=now,
        created_by=actor,
        source=source,
        note=note.strip(),
        is_current=True,
        category_count=len(snapshot.categories),
        department_count=len(snapshot.departments),
        item_count=len(snapshot.items),
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError as error:
        raise DirectoryChanged("another directory change was saved at the same time") from error
    categories = {
        c.code: DirectoryCategory(
            version_id=version.id, code=c.code, name=c.name, description=c.description
        )
        for c in snapshot.categories
    }
    session.add_all(categories.values())
    session.flush()
    session.add_all(
        DirectoryDepartment(
            version_id=version.id,
            code=d.code,
            name=d.name,
            level=d.level,
            county=d.county,
            role=d.role,
            phone_number=d.phone_number,
            sms_contact_number=d.sms_contact_number,
        )
        for d in snapshot.departments
    )
    session.add_all(
        DirectoryItem(
            version_id=version.id,
            category_id=categories[i.category].id,
            code=i.code,
            title=i.title,
            description=i.description,
            keywords="|".join(i.keywords),
            level=i.level,
            role=i.role,
            sla_days=i.sla_days,
            is_urgent=i.is_urgent,
        )
        for i in snapshot.items
    )
    if previous is not None:
        before = load_snapshot(previous, session=session)
        session.add_all(
            DirectoryChange(
                version_id=version.id, at=now, actor=actor, entity=e, code=c, action=a, fields=f
            )
            for e, c, a, f in diff(before, snapshot)
        )
    session.flush()
    return version


def diff(before: Snapshot, after: Snapshot) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(entity, code, action, {field: [before, after]}) for each record added, changed or
    removed between two directories."""
    changes: list[tuple[str, str, str, dict[str, Any]]] = []
    for entity, old_records, new_records in (
        ("category", before.categories, after.categories),
        ("department", before.departments, after.departments),
        ("item", before.items, after.items),
    ):
        old = {r.code: _plain(r) for r in old_records}
        new = {r.code: _plain(r) for r in new_records}
        for code in sorted(old.keys() | new.keys()):
            if code not in old:
                changes.append(
                    (entity, code, "added", {k: [None, v] for k, v in new[code].items()})
                )
            elif code not in new:
                changes.append(
                    (entity, code, "removed", {k: [v, None] for k, v in old[code].items()})
                )
            elif old[code] != new[code]:
                fields = {
                    k: [old[code][k], new[code][k]]
                    for k in new[code]
                    if old[code][k] != new[code][k]
                }
                changes.append((entity, code, "changed", fields))
    return changes


def _plain(record: CategoryRecord | DepartmentRecord | ItemRecord) -> dict[str, Any]:
    values = asdict(record)
    values.pop("line")
    values.pop("code")
    for key, value in values.items():
        if isinstance(value, DirectoryLevel):
            values[key] = value.value
        elif isinstance(value, tuple):
            values[key] = "|".join(value)
    return values


def _containing(query: str, *columns: Any) -> ColumnElement[bool]:
    """Any of ``columns`` contains ``query`` (any case; LIKE's wildcards taken literally)."""
    pattern = f"%{_escaped(query.strip())}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
