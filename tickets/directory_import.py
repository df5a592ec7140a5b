"""Reading and checking a duty directory: the three CSV files of ``../shared/duty-directory/``
(categories, departments, items) parsed into records, row by row and then across files.

No database here: ``read_directory`` turns the files' bytes into a ``Snapshot`` or raises
``DirectoryInvalid`` with every problem found, each naming its file and line, e.g.
``items.csv line 17: level must be city, county or township, not 'provincial'``. The admin
pages' edit forms go through the same row parsers (``parse_item``, ``parse_department``)
and the same cross-file check (``check_snapshot``), so an edit can never make a directory
that an import would refuse.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

import phonenumbers

from tickets.models import DirectoryLevel

CATEGORIES, DEPARTMENTS, ITEMS = "categories.csv", "departments.csv", "items.csv"
FILES = (CATEGORIES, DEPARTMENTS, ITEMS)
COLUMNS = {
    CATEGORIES: ("code", "name", "description"),
    DEPARTMENTS: ("code", "name", "level", "county", "role", "phone", "sms_contact"),
    ITEMS: (
        "code",
        "category",
        "title",
        "description",
        "keywords",
        "level",
        "role",
        "sla_days",
        "urgent",
    ),
}
ENTITY = {CATEGORIES: "category", DEPARTMENTS: "department", ITEMS: "item"}
MAX_SLA_DAYS = 15
MAX_KEYWORDS = 20
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
LEVELS = "city, county or township"
# The resolution rule of the directory's README: a township item goes to the caller's
# street/township office, or (street unknown) to the county unit's government office.
COUNTY_GOVERNMENT_ROLE = "政府办"


@dataclass(frozen=True)
class Problem:
    """One thing wrong, where it is (``line`` None for a record not read from a file, e.g.
    one being edited: then ``code`` says which) and which column (``field``)."""

    file: str
    line: int | None
    message: str
    field: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file} line {self.line}: {self.message}"
        if self.code:
            return f"{ENTITY[self.file]} {self.code}: {self.message}"
        return f"{self.file}: {self.message}"


class DirectoryInvalid(ValueError):
    """The directory was refused; ``problems`` lists everything wrong, file and line order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (FILES.index(p.file), p.line or 0, p.field or "")
        )
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''}: "
            + "; ".join(str(p) for p in self.problems[:5])
            + (" ..." if count > 5 else "")
        )


@dataclass(frozen=True)
class CategoryRecord:
    code: str
    name: str
    description: str
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DepartmentRecord:
    code: str
    name: str
    level: DirectoryLevel
    county: str | None
    role: str
    phone_number: str
    sms_contact_number: str
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ItemRecord:
    code: str
    category: str  # the category's code
    title: str
    description: str
    keywords: tuple[str, ...]
    level: DirectoryLevel
    role: str
    sla_days: int
    is_urgent: bool
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Snapshot:
    """A whole directory, as read from files or from one stored version."""

    categories: tuple[CategoryRecord, ...]
    departments: tuple[DepartmentRecord, ...]
    items: tuple[ItemRecord, ...]

    def with_item(self, item: ItemRecord) -> Snapshot:
        return replace(self, items=_replaced(self.items, item))

    def with_department(self, department: DepartmentRecord) -> Snapshot:
        return replace(self, departments=_replaced(self.departments, department))

    @property
    def county_units(self) -> list[str]:
        return sorted({d.county for d in self.departments if d.county})


R = TypeVar("R", ItemRecord, DepartmentRecord)


def _replaced(records: tuple[R, ...], new: R) -> tuple[R, ...]:
    return tuple(new if record.code == new.code else record for record in records)


# -- reading the files ----------------------------------------------------------------------


def read_directory(files: Mapping[str, bytes]) -> Snapshot:
    """The directory in ``files`` (``categories.csv``, ``departments.csv``, ``items.csv`` →
    their bytes), checked row by row and across files; DirectoryInvalid lists every problem."""
    problems: list[Problem] = [
        Problem(name, None, "is missing: the three files are needed together")
        for name in FILES
        if name not in files
    ]
    if problems:
        raise DirectoryInvalid(problems)
    parsed: dict[str, list[object]] = {}
    parsers: dict[str, Callable[..., object]] = {
        CATEGORIES: parse_category,
        DEPARTMENTS: parse_department,
        ITEMS: parse_item,
    }
    for name in FILES:
        rows, file_problems = read_rows(name, files[name])
        problems += file_problems
        parsed[name] = []
        for line, values in rows:
            record = parsers[name](values, line=line, problems=problems)
            if record is not None:
                parsed[name].append(record)
    snapshot = Snapshot(
        tuple(parsed[CATEGORIES]),  # type: ignore[arg-type]
        tuple(parsed[DEPARTMENTS]),  # type: ignore[arg-type]
        tuple(parsed[ITEMS]),  # type: ignore[arg-type]
    )
    # A file with wrong rows is missing those records: checking other files against it
    # would only repeat its problems (every item of a dropped category "unknown").
    broken = {problem.file for problem in problems}
    problems += check_snapshot(snapshot, references=CATEGORIES not in broken, roles=not broken)
    if problems:
        raise DirectoryInvalid(problems)
    return snapshot


def read_rows(name: str, data: bytes) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """The data rows of one CSV file with the line each starts on (a quoted field may span
    lines), keyed by the header's column names; blank lines are skipped."""
    columns = COLUMNS[name]
    try:
        text = data.decode("utf-8-sig")  # a BOM (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start]
        return [], [
            Problem(name, line, f"is not UTF-8 text (byte 0x{byte:02x}): save it as CSV UTF-8")
        ]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[Problem] = []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], [Problem(name, None, f"is empty: the header {','.join(columns)} is needed")]
        header = [column.strip() for column in header]
        missing = [c for c in columns if c not in header]
        unknown = [c for c in header if c not in columns]
        twice = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown or twice:
            parts = []
            if missing:
                parts.append(
                    f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                )
            if unknown:
                parts.append(
                    f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                )
            if twice:
                parts.append(f"column{'s' if len(twice) > 1 else ''} twice: {', '.join(twice)}")
            message = "; ".join(parts) + f" (the header is {','.join(columns)})"
            return [], [Problem(name, 1, message)]
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in fields):
                continue
            if len(fields) != len(header):
                problems.append(
                    Problem(name, line, f"has {len(fields)} fields, the header has {len(header)}")
                )
                continue
            rows.append((line, dict(zip(header, fields, strict=True))))
    except csv.Error as error:
        problems.append(Problem(name, reader.line_num, f"is not valid CSV: {error}"))
        return rows, problems
    if not rows and not problems:
        problems.append(Problem(name, None, "has a header but no rows"))
    return rows, problems


# -- one row --------------------------------------------------------------------------------


class _Row:
    """A row's raw values and the problems found in them."""

    def __init__(
        self, name: str, values: Mapping[str, str], line: int | None, problems: list[Problem]
    ) -> None:
        self.name, self.values, self.line, self.problems = name, values, line, problems
        self.code = (values.get("code") or "").strip()
        self.ok = True

    def problem(self, column: str, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(self.name, self.line, message, column, self.code or None))

    def text(self, column: str, max_length: int, *, required: bool = True) -> str:
        value = " ".join((self.values.get(column) or "").split())
        if required and not value:
            self.problem(column, f"{column} is empty")
        elif len(value) > max_length:
            self.problem(column, f"{column} is longer than {max_length} characters")
        return value

    def code_value(self, max_length: int) -> str:
        value = self.text("code", max_length)
        if value and len(value) <= max_length and not CODE.match(value):
            self.problem("code", f"code may hold letters, digits, '-' and '_' only, not {value!r}")
        return value

    def level(self) -> DirectoryLevel:
        value = (self.values.get("level") or "").strip()
        try:
            return DirectoryLevel(value.lower())
        except ValueError:
            self.problem("level", f"level must be {LEVELS}, not {value!r}")
            return DirectoryLevel.CITY

    def e164(self, column: str, *, mobile: bool = False) -> str:
        value = (self.values.get(column) or "").strip()
        what = "a mobile number" if mobile else "a phone number"
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if (
            parsed is None
            or not phonenumbers.is_valid_number(parsed)
            or phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value
        ):
            self.problem(column, f"{column} must be {what} in E.164 form (+86...), not {value!r}")
        elif mobile and phonenumbers.number_type(parsed) not in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            self.problem(column, f"{column} must be a mobile number (it gets SMS), not {value!r}")
        return value


def parse_category(
    values: Mapping[str, str], *, line: int | None = None, problems: list[Problem]
) -> CategoryRecord | None:
    row = _Row(CATEGORIES, values, line, problems)
    record = CategoryRecord(
        code=row.code_value(16),
        name=row.text("name", 100),
        description=row.text("description", 2000, required=False),
        line=line,
    )
    return record if row.ok else None


def parse_department(
    values: Mapping[str, str], *, line: int | None = None, problems: list[Problem]
) -> DepartmentRecord | None:
    row = _Row(DEPARTMENTS, values, line, problems)
    code, name, level = row.code_value(40), row.text("name", 200), row.level()
    county = row.text("county", 50, required=False) or None
    if level is DirectoryLevel.CITY and county:
        row.problem("county", f"county must be empty for a city department, not {county!r}")
    elif level is not DirectoryLevel.CITY and not county:
        row.problem("county", f"county is empty: a {level.value} department is in a county unit")
    record = DepartmentRecord(
        code=code,
        name=name,
        level=level,
        county=county,
        role=row.text("role", 50),
        phone_number=row.e164("phone"),
        sms_contact_number=row.e164("sms_contact", mobile=True),
        line=line,
    )
    return record if row.ok else None


def parse_item(
    values: Mapping[str, str], *, line: int | None = None, problems: list[Problem]
) -> ItemRecord | None:
    row = _Row(ITEMS, values, line, problems)
    code, category = row.code_value(20), row.text("category", 16)
    if code and category and not code.startswith(f"{category}-"):
        row.problem("code", f"code {code} does not start with its category {category}-")
    title, description = row.text("title", 200), row.text("description", 2000)
    keywords = _keywords(row)
    level, role = row.level(), row.text("role", 50)
    raw_days = (values.get("sla_days") or "").strip()
    sla_days = int(raw_days) if raw_days.isdigit() else 0
    if not 1 <= sla_days <= MAX_SLA_DAYS:
        row.problem(
            "sla_days",
            f"sla_days must be a whole number of working days from 1 to {MAX_SLA_DAYS},"
            f" not {raw_days!r}",
        )
    raw_urgent = (values.get("urgent") or "").strip()
    if raw_urgent.lower() not in ("yes", "no"):
        row.problem("urgent", f"urgent must be yes or no, not {raw_urgent!r}")
    is_urgent = raw_urgent.lower() == "yes"
    if is_urgent and sla_days > 1:
        row.problem("sla_days", f"an urgent item must have sla_days 1, not {sla_days}")
    record = ItemRecord(
        code=code,
        category=category,
        title=title,
        description=description,
        keywords=keywords,
        level=level,
        role=role,
        sla_days=sla_days,
        is_urgent=is_urgent,
        line=line,
    )
    return record if row.ok else None


def _keywords(row: _Row) -> tuple[str, ...]:
    words: list[str] = []
    for raw in (row.values.get("keywords") or "").split("|"):
        word = " ".join(raw.split())
        if word and word not in words:
            words.append(word)
    if not words:
        row.problem("keywords", "keywords is empty: give search terms separated by |")
    elif len(words) > MAX_KEYWORDS:
        row.problem("keywords", f"at most {MAX_KEYWORDS} keywords, not {len(words)}")
    elif any(len(word) > 40 for word in words):
        row.problem("keywords", "a keyword is longer than 40 characters")
    return tuple(words)


# -- across rows and files ------------------------------------------------------------------


def check_snapshot(
    snapshot: Snapshot, *, references: bool = True, roles: bool = True
) -> list[Problem]:
    """What is wrong between rows and files: duplicates, unknown categories (unless not
    ``references``), items whose role no department can take at their level (README:
    "Resolving an item"; unless not ``roles``)."""
    problems: list[Problem] = []
    problems += _unique(CATEGORIES, snapshot.categories, "code", lambda c: c.code)
    problems += _unique(CATEGORIES, snapshot.categories, "name", lambda c: c.name)
    problems += _unique(DEPARTMENTS, snapshot.departments, "code", lambda d: d.code)
    problems += _unique(DEPARTMENTS, snapshot.departments, "name", lambda d: d.name)
    problems += _unique(
        DEPARTMENTS,
        [d for d in snapshot.departments if d.level is DirectoryLevel.CITY],
        "role",
        lambda d: d.role,
        "role {value} already has a city department, {other}",
    )
    problems += _unique(
        DEPARTMENTS,
        [d for d in snapshot.departments if d.level is DirectoryLevel.COUNTY],
        "role",
        lambda d: f"{d.role} in {d.county}",
        "role {value} already has a county department, {other}",
    )
    problems += _unique(ITEMS, snapshot.items, "code", lambda i: i.code)
    problems += _unique(ITEMS, snapshot.items, "title", lambda i: i.title)
    categories = {c.code for c in snapshot.categories}
    for item in snapshot.items:
        if references and item.category not in categories:
            problems.append(
                Problem(
                    ITEMS,
                    item.line,
                    f"unknown category {item.category!r} (not in categories.csv)",
                    "category",
                    item.code,
                )
            )
    if roles:
        problems += _roles_resolve(snapshot)
    return problems


def _unique(
    name: str,
    records: Iterable[CategoryRecord | DepartmentRecord | ItemRecord],
    column: str,
    key: Callable[..., str],
    message: str = "{column} {value} is already used by {other}",
) -> list[Problem]:
    seen: dict[str, CategoryRecord | DepartmentRecord | ItemRecord] = {}
    problems = []
    for record in records:
        value = key(record)
        first = seen.setdefault(value, record)
        if first is not record:
            where = f"line {first.line}" if first.line else None
            other = first.code + (f" ({where})" if where else "")
            text = message.format(column=column, value=value, other=other)
            if column == "code":  # "already used by C01-004 (line 5)" would repeat the code
                text = f"code {value} is already used" + (f" ({where})" if where else "")
            problems.append(
                Problem(
                    name,
                    record.line,
                    text,
                    column,
                    record.code,
                )
            )
    return problems


def _roles_resolve(snapshot: Snapshot) -> list[Problem]:
    """Every city item's role has a city department; every county item's role a county
    department in each county unit; every township item's role a township office in each
    county unit, and each county unit a government office (the fallback)."""
    present: dict[DirectoryLevel, set[tuple[str | None, str]]] = defaultdict(set)
    for department in snapshot.departments:
        present[department.level].add((department.county, department.role))
    units = snapshot.county_units
    problems: list[Problem] = []
    missing: dict[tuple[DirectoryLevel, str, str], list[ItemRecord]] = defaultdict(list)
    for item in snapshot.items:
        if item.level is DirectoryLevel.CITY:
            if (None, item.role) not in present[DirectoryLevel.CITY]:
                problems.append(
                    Problem(
                        ITEMS,
                        item.line,
                        f"role {item.role} has no city department (level city in departments.csv)",
                        "role",
                        item.code,
                    )
                )
            continue
        if not units:
            problems.append(
                Problem(
                    ITEMS,
                    item.line,
                    f"a {item.level.value} item needs county units, and departments.csv has none",
                    "level",
                    item.code,
                )
            )
            continue
        needed = [(item.level, item.role)]
        if item.level is DirectoryLevel.TOWNSHIP:
            needed.append((DirectoryLevel.COUNTY, COUNTY_GOVERNMENT_ROLE))
        for level, role in needed:
            for unit in units:
                if (unit, role) not in present[level]:
                    missing[(level, role, unit)].append(item)
    for (level, role, unit), items in missing.items():
        first, more = items[0], len(items) - 1
        problems.append(
            Problem(
                ITEMS,
                first.line,
                f"role {role} has no {level.value} department in {unit}"
                + (f" (nor for {more} more {first.level.value} items)" if more else ""),
                "role",
                first.code,
            )
        )
    return problems
