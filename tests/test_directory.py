"""The duty directory in the ticket store: importing the sample, every kind of line error
with its line number, all or nothing, versions that never change, edits with their audit.
On the real database (SQLite, or PostgreSQL via DATABASE_URL)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets.directory_import import (
    CATEGORIES,
    COLUMNS,
    DEPARTMENTS,
    FILES,
    ITEMS,
    DirectoryInvalid,
    read_directory,
)
from tickets.models import (
    DirectoryChange,
    DirectoryDepartment,
    DirectoryItem,
    DirectoryLevel,
    DirectoryVersion,
    DirectoryVersionKind,
)
from webapp.cli import ROOT

SAMPLE = ROOT / "routing" / "data" / "directory"
ACTOR = "system:test"


def sample() -> dict[str, bytes]:
    return {name: (SAMPLE / name).read_bytes() for name in FILES}


def line_of(files: dict[str, bytes], name: str, code: str) -> int:
    """The 1-based line of the row ``code`` in one of the files (the sample has one line
    per row)."""
    for number, line in enumerate(files[name].decode("utf-8").splitlines(), start=1):
        if line.startswith(f"{code},"):
            return number
    raise AssertionError(f"{code} is not in {name}")


def changed(files: dict[str, bytes], name: str, code: str, /, **values: str) -> dict[str, bytes]:
    """``files`` with some columns of row ``code`` of ``name`` set to ``values``."""
    rows = list(csv.reader(io.StringIO(files[name].decode("utf-8"), newline="")))
    header = rows[0]
    for row in rows[1:]:
        if row[0] == code:
            for column, value in values.items():
                row[header.index(column)] = value
            break
    else:
        raise AssertionError(f"{code} is not in {name}")
    return {**files, name: _csv(rows)}


def without(files: dict[str, bytes], name: str, code: str) -> dict[str, bytes]:
    rows = list(csv.reader(io.StringIO(files[name].decode("utf-8"), newline="")))
    kept = [row for row in rows if row[0] != code]
    assert len(kept) == len(rows) - 1
    return {**files, name: _csv(kept)}


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def problems_of(files: dict[str, bytes]) -> list[str]:
    with pytest.raises(DirectoryInvalid) as refused:
        read_directory(files)
    return [str(problem) for problem in refused.value.problems]


def import_sample(db: Session, files: dict[str, bytes] | None = None, **kwargs) -> DirectoryVersion:
    version = directory_store.import_directory(files or sample(), session=db, actor=ACTOR, **kwargs)
    db.commit()
    return version


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


# -- the sample -----------------------------------------------------------------------------


def test_the_sample_is_imported_as_the_current_version(db: Session) -> None:
    version = import_sample(db, note="first")

    assert version.is_current
    assert (version.category_count, version.department_count, version.item_count) == (
        12,
        212,
        815,
    )
    assert version.kind is DirectoryVersionKind.IMPORT
    assert version.created_by == ACTOR
    assert version.note == "first"
    assert {s["file"] for s in version.source} == set(FILES)
    assert all(len(s["sha256"]) == 64 for s in version.source)
    assert directory_store.get_current_version(session=db).id == version.id
    summary = directory_store.summarize(version, session=db)
    assert summary.items_by_level == {"city": 364, "county": 403, "township": 48}
    assert summary.urgent_items == 42
    assert summary.departments_by_level == {"city": 36, "county": 144, "township": 32}
    assert len(summary.county_units) == 8
    assert ("C01", "城乡建设", 95) in summary.categories


def test_an_item_keeps_every_column_of_the_file(db: Session) -> None:
    version = import_sample(db)

    item = directory_store.find_item(version, "C01-001", session=db)
    assert item is not None
    assert item.category.code == "C01"
    assert item.title == "物业服务纠纷"
    assert item.description == "物业公司服务不到位或服务与收费不符"
    assert item.keyword_list[:3] == ["物业", "物业公司", "服务差"]
    assert (item.level, item.role, item.sla_days, item.is_urgent) == (
        DirectoryLevel.COUNTY,
        "住建局",
        7,
        False,
    )
    department = directory_store.find_department(version, "D-CITY-ZJJ", session=db)
    assert department is not None
    assert department.name == "拉萨市住房和城乡建设局"
    assert department.level is DirectoryLevel.CITY
    assert department.county is None
    assert department.phone_number == "+868916533936"
    assert department.sms_contact_number == "+8613365632311"


def test_a_bom_at_the_start_of_each_file_is_accepted(db: Session) -> None:
    files = {name: b"\xef\xbb\xbf" + data for name, data in sample().items()}

    version = import_sample(db, files)

    assert version.item_count == 815
    assert directory_store.find_item(version, "C01-001", session=db) is not None


def test_search_by_code_title_or_keyword_and_filter_by_category_and_level(db: Session) -> None:
    version = import_sample(db)

    def codes(**kwargs) -> set[str]:
        return {i.code for i in directory_store.search_items(version, session=db, **kwargs)}

    assert codes(query="C01-001") == {"C01-001"}
    assert "C01-001" in codes(query="物业服务")  # title
    assert "C01-001" in codes(query="保洁")  # a keyword only
    assert codes(query="100%_") == set()  # LIKE's wildcards are plain text
    c03 = codes(category="C03")
    assert len(c03) == 85 and all(code.startswith("C03-") for code in c03)
    city = directory_store.search_items(version, session=db, level=DirectoryLevel.CITY)
    assert len(city) == 364
    township = directory_store.search_departments(
        version, session=db, level=DirectoryLevel.TOWNSHIP, county="城关区"
    )
    assert len(township) == 4


# -- line errors ----------------------------------------------------------------------------


def test_a_wrong_level_names_the_file_and_line() -> None:
    files = changed(sample(), ITEMS, "C01-017", level="provincial")

    assert problems_of(files) == [
        f"items.csv line {line_of(files, ITEMS, 'C01-017')}: level must be city, county or"
        " township, not 'provincial'"
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sla_days": "twenty"}, "sla_days must be a whole number of working days from 1 to 15"),
        ({"sla_days": "30"}, "sla_days must be a whole number of working days from 1 to 15"),
        ({"urgent": "maybe"}, "urgent must be yes or no, not 'maybe'"),
        ({"urgent": "yes", "sla_days": "3"}, "an urgent item must have sla_days 1, not 3"),
        ({"title": " "}, "title is empty"),
        ({"keywords": "|"}, "keywords is empty"),
        ({"role": ""}, "role is empty"),
        ({"code": "C02-999"}, "code C02-999 does not start with its category C01-"),
        ({"role": "不存在局", "level": "city"}, "role 不存在局 has no city department"),
    ],
)
def test_every_kind_of_item_error_is_reported_on_its_line(
    values: dict[str, str], message: str
) -> None:
    files = changed(sample(), ITEMS, "C01-005", **values)
    line = line_of(sample(), ITEMS, "C01-005")

    problems = problems_of(files)

    assert any(p.startswith(f"items.csv line {line}: {message}") for p in problems), problems


def test_an_unknown_category() -> None:
    files = changed(sample(), ITEMS, "C01-005", code="C13-005", category="C13")

    assert problems_of(files) == [
        f"items.csv line {line_of(sample(), ITEMS, 'C01-005')}: unknown category 'C13'"
        " (not in categories.csv)"
    ]


def test_duplicate_codes_and_titles_name_the_first_line() -> None:
    files = sample()
    first, second = line_of(files, ITEMS, "C01-004"), line_of(files, ITEMS, "C01-005")
    files = changed(files, ITEMS, "C01-005", code="C01-004")
    files = changed(files, ITEMS, "C01-006", title="物业服务纠纷")  # C01-001's

    assert problems_of(files) == [
        f"items.csv line {second}: code C01-004 is already used (line {first})",
        f"items.csv line {line_of(sample(), ITEMS, 'C01-006')}: title 物业服务纠纷 is already"
        f" used by C01-001 (line {line_of(sample(), ITEMS, 'C01-001')})",
    ]


def test_a_county_role_must_be_in_every_county_unit() -> None:
    files = without(sample(), DEPARTMENTS, "D-DZQ-ZJJ")  # 达孜区住建局
    first_user = line_of(files, ITEMS, "C01-001")  # the first county item of 住建局

    problems = problems_of(files)

    assert len(problems) == 1
    assert problems[0].startswith(
        f"items.csv line {first_user}: role 住建局 has no county department in 达孜区 (nor for"
    )


@pytest.mark.parametrize(
    ("code", "values", "message"),
    [
        ("D-CITY-ZJJ", {"phone": "08916533936"}, "phone must be a phone number in E.164 form"),
        ("D-CITY-ZJJ", {"phone": "+86891"}, "phone must be a phone number in E.164 form"),
        ("D-CITY-ZJJ", {"sms_contact": "+868916533936"}, "sms_contact must be a mobile number"),
        ("D-CITY-ZJJ", {"level": "town"}, "level must be city, county or township, not 'town'"),
        ("D-CITY-ZJJ", {"county": "城关区"}, "county must be empty for a city department"),
        ("D-CGQ-ZJJ", {"county": ""}, "county is empty: a county department"),
        ("D-CITY-CGJ", {"role": "住建局"}, "role 住建局 already has a city department, D-CITY-ZJJ"),
        (
            "D-CITY-CGJ",
            {"name": "拉萨市住房和城乡建设局"},
            "name 拉萨市住房和城乡建设局 is already",
        ),
        ("D-CITY-CGJ", {"code": "D CITY"}, "code may hold letters, digits, '-' and '_' only"),
    ],
)
def test_every_kind_of_department_error_is_reported_on_its_line(
    code: str, values: dict[str, str], message: str
) -> None:
    files = changed(sample(), DEPARTMENTS, code, **values)
    line = line_of(sample(), DEPARTMENTS, code)

    problems = problems_of(files)

    assert any(p.startswith(f"departments.csv line {line}: {message}") for p in problems), problems


def test_duplicate_category_codes() -> None:
    files = changed(sample(), CATEGORIES, "C12", code="C11")

    assert "categories.csv line 13: code C11 is already used (line 12)" in problems_of(files)


def test_a_missing_column_is_reported_on_line_1() -> None:
    text = sample()[ITEMS].decode("utf-8").replace(",sla_days,urgent", ",urgent", 1)

    problems = problems_of({**sample(), ITEMS: text.encode("utf-8")})

    assert problems == [
        "items.csv line 1: missing column sla_days (the header is " + ",".join(COLUMNS[ITEMS]) + ")"
    ]


def test_a_row_with_too_few_fields() -> None:
    lines = sample()[CATEGORIES].decode("utf-8").splitlines()
    lines[4] = "C04,医疗卫生"

    assert problems_of({**sample(), CATEGORIES: "\n".join(lines).encode("utf-8")}) == [
        "categories.csv line 5: has 2 fields, the header has 3"
    ]


def test_a_file_that_is_not_utf8_names_the_line() -> None:
    files = sample()
    line = line_of(files, ITEMS, "C01-017")
    gbk = files[ITEMS].decode("utf-8").encode("gbk")

    assert problems_of({**files, ITEMS: gbk}) == [
        "items.csv line 2: is not UTF-8 text (byte 0xce): save it as CSV UTF-8"
    ]
    assert line > 2  # the first bad byte is on the first data line


def test_line_numbers_count_a_quoted_field_that_spans_two_lines() -> None:
    files = changed(sample(), ITEMS, "C01-002", description="第一行\n第二行")
    files = changed(files, ITEMS, "C01-003", level="provincial")

    problems = problems_of(files)

    # C01-003 was on line 4; the line break inside C01-002's description moves it to 5.
    assert problems == [
        "items.csv line 5: level must be city, county or township, not 'provincial'"
    ]


def test_empty_and_missing_files() -> None:
    assert problems_of({**sample(), CATEGORIES: b""}) == [
        "categories.csv: is empty: the header code,name,description is needed"
    ]
    assert problems_of({CATEGORIES: sample()[CATEGORIES]}) == [
        "departments.csv: is missing: the three files are needed together",
        "items.csv: is missing: the three files are needed together",
    ]


def test_every_problem_is_reported_at_once_in_file_and_line_order() -> None:
    files = changed(sample(), ITEMS, "C05-010", urgent="maybe")
    files = changed(files, ITEMS, "C01-017", level="provincial")
    files = changed(files, DEPARTMENTS, "D-CITY-ZJJ", phone="12345")

    problems = problems_of(files)

    assert [p.split(":")[0] for p in problems] == [
        f"departments.csv line {line_of(files, DEPARTMENTS, 'D-CITY-ZJJ')}",
        f"items.csv line {line_of(files, ITEMS, 'C01-017')}",
        f"items.csv line {line_of(files, ITEMS, 'C05-010')}",
    ]


# -- all or nothing, versions ---------------------------------------------------------------


def test_a_bad_file_after_a_good_import_changes_nothing(db: Session) -> None:
    good = import_sample(db)
    items_before = count(db, DirectoryItem)
    files = changed(sample(), ITEMS, "C12-055", level="provincial")  # the very last row

    with pytest.raises(DirectoryInvalid):
        directory_store.import_directory(files, session=db, actor=ACTOR)
    db.rollback()

    assert [v.id for v in directory_store.list_versions(session=db)] == [good.id]
    assert directory_store.get_current_version(session=db).id == good.id
    assert count(db, DirectoryItem) == items_before == 815
    assert count(db, DirectoryChange) == 0


def test_a_reimport_makes_a_new_version_and_the_old_rows_stay(db: Session) -> None:
    first = import_sample(db)
    old_item = directory_store.find_item(first, "C01-001", session=db)
    assert old_item is not None
    old_id = old_item.id
    files = changed(sample(), ITEMS, "C01-001", sla_days="5", keywords="物业|物业公司")

    second = import_sample(db, files)

    db.expire_all()
    assert second.id != first.id
    assert second.based_on_id == first.id
    assert [v.id for v in directory_store.list_versions(session=db) if v.is_current] == [second.id]
    assert count(db, DirectoryItem) == 2 * 815
    kept = db.get(DirectoryItem, old_id)
    assert kept is not None and kept.version_id == first.id and kept.sla_days == 7
    new_item = directory_store.find_item(second, "C01-001", session=db)
    assert new_item is not None and new_item.id != old_id and new_item.sla_days == 5
    changes = directory_store.version_changes(second, session=db)
    assert [(c.entity, c.code, c.action) for c in changes] == [("item", "C01-001", "changed")]
    assert changes[0].fields["sla_days"] == [7, 5]
    assert changes[0].actor == ACTOR


def test_only_one_version_can_be_current(db: Session, engine: Engine) -> None:
    version = import_sample(db)

    db.add(
        DirectoryVersion(
            kind=DirectoryVersionKind.IMPORT,
            created_by=ACTOR,
            is_current=True,
            category_count=0,
            department_count=0,
            item_count=0,
        )
    )
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()
    assert directory_store.get_current_version(session=db).id == version.id


# -- edits ----------------------------------------------------------------------------------


def test_an_item_edit_makes_a_new_version_with_its_audit(db: Session) -> None:
    first = import_sample(db)
    old = directory_store.find_item(first, "C01-001", session=db)
    assert old is not None
    values = {**directory_store.item_values(old), "sla_days": "3", "role": "城管局"}

    second = directory_store.edit_item(
        "C01-001", values, based_on=first.id, session=db, actor="staff:7", note="moved"
    )
    db.commit()

    assert second is not None and second.is_current and second.kind is DirectoryVersionKind.EDIT
    assert second.created_by == "staff:7" and second.note == "moved"
    db.expire_all()
    assert not db.get(DirectoryVersion, first.id).is_current  # type: ignore[union-attr]
    assert db.get(DirectoryItem, old.id).role == "住建局"  # type: ignore[union-attr]
    new = directory_store.find_item(second, "C01-001", session=db)
    assert new is not None and (new.role, new.sla_days) == ("城管局", 3)
    history = directory_store.changes_of("item", "C01-001", session=db)
    assert [(c.version_id, c.actor, c.action) for c in history] == [
        (second.id, "staff:7", "changed")
    ]
    assert history[0].fields == {"role": ["住建局", "城管局"], "sla_days": [7, 3]}
    assert count(db, DirectoryItem) == 2 * 815


def test_an_edit_that_changes_nothing_makes_no_version(db: Session) -> None:
    first = import_sample(db)
    item = directory_store.find_item(first, "C01-001", session=db)
    assert item is not None

    result = directory_store.edit_item(
        "C01-001", directory_store.item_values(item), based_on=first.id, session=db, actor=ACTOR
    )

    assert result is None
    assert len(directory_store.list_versions(session=db)) == 1


def test_a_bad_edit_is_refused_with_the_field_and_nothing_is_written(db: Session) -> None:
    first = import_sample(db)
    item = directory_store.find_item(first, "C01-001", session=db)
    assert item is not None

    with pytest.raises(DirectoryInvalid) as refused:
        directory_store.edit_item(
            "C01-001",
            {**directory_store.item_values(item), "level": "provincial"},
            based_on=first.id,
            session=db,
            actor=ACTOR,
        )

    [problem] = refused.value.problems
    assert problem.field == "level"
    assert str(problem) == "item C01-001: level must be city, county or township, not 'provincial'"
    db.rollback()
    assert len(directory_store.list_versions(session=db)) == 1


def test_a_department_edit_that_leaves_items_without_a_department_is_refused(
    db: Session,
) -> None:
    first = import_sample(db)
    department = directory_store.find_department(first, "D-CITY-GDGS", session=db)  # 供电公司
    assert department is not None
    values = {**directory_store.department_values(department), "role": "电力局"}

    with pytest.raises(DirectoryInvalid) as refused:
        directory_store.edit_department(
            department.code, values, based_on=first.id, session=db, actor=ACTOR
        )

    assert any("role 供电公司 has no city department" in str(p) for p in refused.value.problems)


def test_a_department_edit_makes_a_new_version(db: Session) -> None:
    first = import_sample(db)
    department = directory_store.find_department(first, "D-CGQ-ZJJ", session=db)
    assert department is not None
    values = {**directory_store.department_values(department), "sms_contact": "+8613900000099"}

    second = directory_store.edit_department(
        "D-CGQ-ZJJ", values, based_on=first.id, session=db, actor="staff:3"
    )
    db.commit()

    assert second is not None
    assert count(db, DirectoryDepartment) == 2 * 212
    [change] = directory_store.changes_of("department", "D-CGQ-ZJJ", session=db)
    assert change.fields == {
        "sms_contact_number": [department.sms_contact_number, "+8613900000099"]
    }


def test_an_edit_based_on_a_version_that_is_no_longer_current_is_refused(db: Session) -> None:
    first = import_sample(db)
    item = directory_store.find_item(first, "C01-001", session=db)
    assert item is not None
    values = {**directory_store.item_values(item), "sla_days": "3"}
    import_sample(db)  # someone imported meanwhile

    with pytest.raises(directory_store.DirectoryChanged):
        directory_store.edit_item("C01-001", values, based_on=first.id, session=db, actor=ACTOR)
