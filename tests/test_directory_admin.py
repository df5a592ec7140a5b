"""The duty directory's admin pages, as a browser uses them: upload, browse, edit."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.support.staff import add_staff, csrf_token_of, log_in
from tests.test_directory import changed, import_sample, line_of, sample
from tickets import directory as directory_store
from tickets.directory_import import FILES, ITEMS
from tickets.models import DirectoryVersion, Role


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def editor(client: FlaskClient, db: Session) -> None:
    """A knowledge editor, logged in on ``client``."""
    add_staff(db, "lhamo", Role.KNOWLEDGE_EDITOR, languages=(), phone_number=None)
    log_in(client, "lhamo")


def upload_data(files: dict[str, bytes], note: str = "") -> dict[str, object]:
    data: dict[str, object] = {
        name.removesuffix(".csv"): (io.BytesIO(content), name) for name, content in files.items()
    }
    data["note"] = note
    return data


def upload(client: FlaskClient, files: dict[str, bytes], **kwargs):
    return client.post(
        "/admin/directory/import",
        data=upload_data(files, **kwargs),
        content_type="multipart/form-data",
    )


def current(db: Session) -> DirectoryVersion:
    db.expire_all()
    return directory_store.get_current_version(session=db)


# -- who may ---------------------------------------------------------------------------------


def directory_requests() -> list[tuple[str, str]]:
    return [
        ("GET", "/admin/directory"),
        ("GET", "/admin/directory/versions/1"),
        ("GET", "/admin/directory/import"),
        ("POST", "/admin/directory/import"),
        ("GET", "/admin/directory/items"),
        ("GET", "/admin/directory/items/C01-001"),
        ("POST", "/admin/directory/items/C01-001"),
        ("GET", "/admin/directory/departments"),
        ("GET", "/admin/directory/departments/D-CITY-ZJJ"),
        ("POST", "/admin/directory/departments/D-CITY-ZJJ"),
    ]


def test_every_directory_page_is_403_for_a_call_taker_and_login_for_the_anonymous(
    app: Flask, client: FlaskClient, db: Session
) -> None:
    import_sample(db)
    for method, path in directory_requests():
        response = client.open(path, method=method)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login")

    add_staff(db, "wang")
    log_in(client, "wang")
    for method, path in directory_requests():
        assert client.open(path, method=method).status_code == 403, (method, path)
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("directory.")}
    assert rules == {  # and no directory route was left out of the list above
        "/admin/directory",
        "/admin/directory/versions/<int:version_id>",
        "/admin/directory/import",
        "/admin/directory/items",
        "/admin/directory/items/<code>",
        "/admin/directory/departments",
        "/admin/directory/departments/<code>",
    }


def test_administrators_and_knowledge_editors_see_the_directory(
    client: FlaskClient, db: Session
) -> None:
    import_sample(db)
    add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)
    add_staff(db, "lhamo", Role.KNOWLEDGE_EDITOR, languages=(), phone_number=None)

    for username in ("admin", "lhamo"):
        log_in(client, username)
        page = client.get("/admin/directory").get_data(as_text=True)
        assert "815" in page and "城乡建设" in page
        assert 'href="/admin/directory">Directory</a>' in page  # the nav link
        client.post("/logout")


# -- upload ----------------------------------------------------------------------------------


def test_an_upload_makes_the_new_current_version_and_shows_its_summary(
    client: FlaskClient, editor: None, db: Session
) -> None:
    response = upload(client, sample(), note="from the city office")

    assert response.status_code == 302
    version = current(db)
    assert response.headers["Location"] == f"/admin/directory/versions/{version.id}"
    assert version.note == "from the city office"
    assert version.created_by.startswith("staff:")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Imported directory version {version.id}: 815 items, 212 departments" in page
    assert "364 city" in page


def test_a_bad_upload_shows_the_line_errors_and_changes_nothing(
    client: FlaskClient, editor: None, db: Session
) -> None:
    first = import_sample(db)
    files = changed(sample(), ITEMS, "C01-017", level="provincial")

    response = upload(client, files)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was imported: 1 problem." in page
    line = line_of(files, ITEMS, "C01-017")
    assert (
        f"items.csv line {line}: level must be city, county or township, not &#39;provincial&#39;"
        in page
    )
    assert current(db).id == first.id
    assert len(directory_store.list_versions(session=db)) == 1


def test_an_upload_needs_all_three_files(client: FlaskClient, editor: None, db: Session) -> None:
    files = {name: data for name, data in sample().items() if name != FILES[0]}

    response = upload(client, files)

    assert response.status_code == 400
    assert "Choose the file." in response.get_data(as_text=True)
    assert directory_store.find_current_version(session=db) is None


def test_an_upload_without_a_csrf_token_is_refused(
    app: Flask, client: FlaskClient, editor: None, db: Session
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True

    assert upload(client, sample()).status_code == 400
    assert directory_store.find_current_version(session=db) is None

    data = upload_data(sample())
    data["csrf_token"] = csrf_token_of(client, "/admin/directory/import")
    response = client.post("/admin/directory/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    assert directory_store.find_current_version(session=db) is not None


# -- browse and edit -------------------------------------------------------------------------


def test_browse_items_by_keyword_category_and_level(
    client: FlaskClient, editor: None, db: Session
) -> None:
    import_sample(db)

    page = client.get("/admin/directory/items?q=保洁").get_data(as_text=True)
    assert "C01-001" in page and "物业服务纠纷" in page

    page = client.get("/admin/directory/items?category=C03&level=city").get_data(as_text=True)
    assert "C03-" in page and "C01-001" not in page

    page = client.get("/admin/directory/departments?county=城关区&level=township").get_data(
        as_text=True
    )
    assert "4 departments" in page


def test_an_item_edit_makes_a_new_version_and_is_audited(
    client: FlaskClient, editor: None, db: Session
) -> None:
    first = import_sample(db)
    form = client.get("/admin/directory/items/C01-001").get_data(as_text=True)
    assert 'value="物业服务纠纷"' in form

    response = client.post(
        "/admin/directory/items/C01-001",
        data={
            **directory_store.item_values(directory_store.find_item(first, "C01-001", session=db)),
            "sla_days": "3",
            "urgent": "",
            "based_on": str(first.id),
            "note": "the 2027 limit",
        },
    )

    assert response.status_code == 302
    second = current(db)
    assert second.id != first.id and second.note == "the 2027 limit"
    item = directory_store.find_item(second, "C01-001", session=db)
    assert item is not None and item.sla_days == 3
    page = client.get("/admin/directory/items/C01-001").get_data(as_text=True)
    assert "sla_days: 7 → 3" in page
    assert "staff:" in page


def test_a_bad_item_edit_shows_the_error_on_the_field(
    client: FlaskClient, editor: None, db: Session
) -> None:
    first = import_sample(db)
    item = directory_store.find_item(first, "C01-001", session=db)
    assert item is not None

    response = client.post(
        "/admin/directory/items/C01-001",
        data={
            **directory_store.item_values(item),
            "sla_days": "3",
            "urgent": "y",
            "based_on": str(first.id),
        },
    )

    assert response.status_code == 400
    assert "an urgent item must have sla_days 1, not 3" in response.get_data(as_text=True)
    assert current(db).id == first.id


def test_an_edit_of_a_stale_page_is_refused(client: FlaskClient, editor: None, db: Session) -> None:
    first = import_sample(db)
    item = directory_store.find_item(first, "C01-001", session=db)
    assert item is not None
    values = {**directory_store.item_values(item), "sla_days": "3", "based_on": str(first.id)}
    second = import_sample(db)

    response = client.post("/admin/directory/items/C01-001", data=values)

    assert response.status_code == 400
    assert "the directory changed since you opened it" in response.get_data(as_text=True)
    assert current(db).id == second.id


def test_a_department_edit_makes_a_new_version(
    client: FlaskClient, editor: None, db: Session
) -> None:
    first = import_sample(db)
    department = directory_store.find_department(first, "D-CGQ-ZJJ", session=db)
    assert department is not None

    response = client.post(
        "/admin/directory/departments/D-CGQ-ZJJ",
        data={
            **directory_store.department_values(department),
            "phone": "+868916000001",
            "based_on": str(first.id),
        },
    )

    assert response.status_code == 302
    new = directory_store.find_department(current(db), "D-CGQ-ZJJ", session=db)
    assert new is not None and new.phone_number == "+868916000001"


def test_unknown_items_and_versions_are_404(client: FlaskClient, editor: None, db: Session) -> None:
    import_sample(db)

    assert client.get("/admin/directory/items/C99-999").status_code == 404
    assert client.get("/admin/directory/departments/D-NOPE").status_code == 404
    assert client.get("/admin/directory/versions/999999").status_code == 404
