"""The administrators' staff pages and the call-takers' console, as a browser uses them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.support.orders import import_demo_directory
from tests.support.staff import PASSWORD, add_staff, csrf_token_of, log_in
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import AccountAction, CallTakerState, Role, Staff

NEW_PERSON = {
    "username": "dawa",
    "password": "a-long-enough-password",
    "confirm": "a-long-enough-password",
    "display_name": "Dawa 达瓦",
    "roles": ["call_taker", "reviewer"],
    "languages": ["bo", "zh"],
    "skills": ["complaint"],
    "phone_number": "+8613900000042",
    "client_identity": "",
    "is_active": "y",
}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def admin(client: FlaskClient, db: Session) -> Staff:
    """An administrator, logged in on ``client``."""
    staff = add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)
    log_in(client, "admin")
    return staff


@pytest.fixture
def call_taker(client: FlaskClient, db: Session) -> Staff:
    """A call-taker, logged in on ``client``."""
    staff = add_staff(db, "wang", languages=("zh",), skills=("complaint",))
    log_in(client, "wang")
    return staff


def checked(page: str, name: str) -> set[str]:
    """The values of the ticked checkboxes called ``name`` on the page."""
    pattern = rf'<input checked id="{name}-\d+" name="{name}" type="checkbox" value="([^"]+)"'
    return set(re.findall(pattern, page))


def reloaded(db: Session, username: str) -> Staff:
    db.expire_all()
    return staff_store.get_staff(username, session=db)


# -- who may ---------------------------------------------------------------------------


def admin_requests(staff_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/admin/staff"),
        ("GET", "/admin/staff/new"),
        ("POST", "/admin/staff/new"),
        ("GET", f"/admin/staff/{staff_id}"),
        ("POST", f"/admin/staff/{staff_id}"),
        ("POST", f"/admin/staff/{staff_id}/password"),
    ]


def test_every_admin_page_and_post_is_403_for_a_call_taker(
    client: FlaskClient, call_taker: Staff, app: Flask
) -> None:
    for method, path in admin_requests(call_taker.id):
        response = client.open(path, method=method, data=NEW_PERSON)
        assert response.status_code == 403, (method, path)
    # and no admin route was left out of the list above
    admin_rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")}
    assert admin_rules == {
        "/admin/staff",
        "/admin/staff/new",
        "/admin/staff/<int:staff_id>",
        "/admin/staff/<int:staff_id>/password",
    }


def test_every_admin_page_sends_the_anonymous_to_log_in(client: FlaskClient, db: Session) -> None:
    staff = add_staff(db, "wang")

    for method, path in admin_requests(staff.id):
        response = client.open(path, method=method, data=NEW_PERSON)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login")
    assert staff_store.find_staff("dawa", session=db) is None


def test_an_admin_post_without_a_csrf_token_is_refused(
    app: Flask, client: FlaskClient, admin: Staff, db: Session
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True

    assert client.post("/admin/staff/new", data=NEW_PERSON).status_code == 400
    assert staff_store.find_staff("dawa", session=db) is None

    token = csrf_token_of(client, "/admin/staff/new")
    assert (
        client.post("/admin/staff/new", data={**NEW_PERSON, "csrf_token": token}).status_code == 302
    )


# -- the list and adding ---------------------------------------------------------------


def test_the_list_shows_everyone_with_roles_languages_and_state(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    add_staff(db, "tenzin", languages=("bo", "zh"), display_name="Tenzin 丹增")
    closed = add_staff(db, "old", phone_number="+8613900000002")
    staff_store.deactivate_staff(closed, session=db, actor="system:test")
    db.commit()

    page = client.get("/admin/staff").get_data(as_text=True)

    assert "Tenzin 丹增" in page
    assert "Tibetan 藏语" in page
    assert "Call-taker 接线员" in page
    assert "Offline" in page
    assert "deactivated" in page


def test_an_administrator_adds_a_call_taker(client: FlaskClient, admin: Staff, db: Session) -> None:
    response = client.post("/admin/staff/new", data=NEW_PERSON)

    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/staff"
    dawa = reloaded(db, "dawa")
    assert dawa.display_name == "Dawa 达瓦"
    assert dawa.role_set == {Role.CALL_TAKER, Role.REVIEWER}
    assert dawa.call_taker is not None
    assert dawa.call_taker.languages == ["zh", "bo"]
    assert dawa.call_taker.skills == ["complaint"]
    assert dawa.call_taker.phone_number == "+8613900000042"
    assert staff_store.account_history(dawa, session=db)[0].actor == f"staff:{admin.id}"
    assert "can log in now" in client.get("/admin/staff").get_data(as_text=True)
    assert staff_store.authenticate("dawa", "a-long-enough-password", session=db) == dawa


def test_a_bad_form_is_shown_again_with_the_errors_and_what_was_typed(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    response = client.post(
        "/admin/staff/new",
        data={
            **NEW_PERSON,
            "username": "admin",  # taken
            "phone_number": "13900000042",  # not E.164
            "confirm": "something-else",
        },
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    # the form's own checks and the service's, all at once
    assert "The two passwords differ." in page
    assert "already taken" in page
    assert "a phone number in E.164 form" in page
    assert 'value="Dawa 达瓦"' in page
    assert 'value="13900000042"' in page
    assert checked(page, "languages") == {"bo", "zh"}
    assert staff_store.find_staff("dawa", session=db) is None


def test_checked_boxes_stay_checked_after_an_error(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    page = client.post("/admin/staff/new", data={**NEW_PERSON, "username": "admin"}).get_data(
        as_text=True
    )

    assert checked(page, "roles") == {"call_taker", "reviewer"}
    assert checked(page, "languages") == {"bo", "zh"}
    assert checked(page, "skills") == {"complaint"}
    assert 'checked id="is_active"' in page


# -- editing ---------------------------------------------------------------------------


def test_the_edit_page_shows_the_account_and_its_history(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    wang = add_staff(db, "wang", skills=("help",), display_name="Wang Fang 王芳")

    page = client.get(f"/admin/staff/{wang.id}").get_data(as_text=True)

    assert 'value="Wang Fang 王芳"' in page
    assert 'value="+8613900000001"' in page
    assert "Account history" in page
    assert "created" in page


def test_an_administrator_edits_roles_languages_skills_phone_and_activity(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    wang = add_staff(db, "wang")

    response = client.post(
        f"/admin/staff/{wang.id}",
        data={
            "display_name": "Wang Fang",
            "roles": ["call_taker", "callback_agent"],
            "languages": ["zh", "en"],
            "skills": ["help", "consultation"],
            "phone_number": "+8613900000077",
            "client_identity": "wang_fang",
            # is_active left out: the box is unticked
        },
    )

    assert response.status_code == 302
    wang = reloaded(db, "wang")
    assert wang.display_name == "Wang Fang"
    assert wang.role_set == {Role.CALL_TAKER, Role.CALLBACK_AGENT}
    assert wang.call_taker is not None
    assert wang.call_taker.languages == ["zh", "en"]
    assert wang.call_taker.skills == ["consultation", "help"]
    assert wang.call_taker.phone_number == "+8613900000077"
    assert wang.call_taker.client_identity == "wang_fang"
    assert not wang.is_active
    actions = [c.action for c in staff_store.account_history(wang, session=db)]
    assert actions[:2] == [AccountAction.DEACTIVATED, AccountAction.UPDATED]


def test_an_unknown_person_is_404(client: FlaskClient, admin: Staff) -> None:
    assert client.get("/admin/staff/999999").status_code == 404


def test_an_administrator_cannot_demote_or_deactivate_themselves(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    response = client.post(
        f"/admin/staff/{admin.id}", data={"display_name": "Admin", "roles": ["reviewer"]}
    )

    assert response.status_code == 400
    assert "your own administrator role" in response.get_data(as_text=True)
    assert reloaded(db, "admin").role_set == {Role.ADMINISTRATOR}


def test_an_administrator_resets_a_password_and_the_old_logins_end(
    app: Flask, client: FlaskClient, admin: Staff, db: Session
) -> None:
    wang = add_staff(db, "wang")
    wang_browser = app.test_client()
    log_in(wang_browser, "wang")
    assert wang_browser.get("/console").status_code == 200

    response = client.post(
        f"/admin/staff/{wang.id}/password",
        data={"password": "the-new-password", "confirm": "the-new-password"},
    )

    assert response.status_code == 302
    assert wang_browser.get("/console").status_code == 302
    db.expire_all()
    assert staff_store.authenticate("wang", "the-new-password", session=db) is not None
    assert staff_store.authenticate("wang", PASSWORD, session=db) is None


def test_a_bad_new_password_is_shown_on_the_edit_page(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    wang = add_staff(db, "wang", display_name="Wang Fang")

    response = client.post(
        f"/admin/staff/{wang.id}/password", data={"password": "short", "confirm": "short"}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Field must be between 10 and 200 characters long." in page
    assert 'value="Wang Fang"' in page  # the details form is still filled in


def test_resetting_your_own_password_keeps_you_logged_in(client: FlaskClient, admin: Staff) -> None:
    client.post(
        f"/admin/staff/{admin.id}/password",
        data={"password": "my-new-password", "confirm": "my-new-password"},
    )

    assert client.get("/admin/staff").status_code == 200


# -- department liaisons ---------------------------------------------------------------

LIAISON = {
    "username": "pema",
    "password": "a-long-enough-password",
    "confirm": "a-long-enough-password",
    "display_name": "Pema 白玛",
    "roles": ["department_liaison"],
    "is_active": "y",
}


def test_a_liaison_without_a_department_is_refused_with_the_fields_error(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    response = client.post("/admin/staff/new", data=LIAISON)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "a department liaison needs their department&#39;s code" in page
    assert re.search(r'class="field has-error">\s*<label for="department_code">', page)
    assert staff_store.find_staff("pema", session=db) is None


def test_a_liaisons_department_must_be_in_the_current_directory(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    version = import_demo_directory(db)

    unknown = client.post("/admin/staff/new", data={**LIAISON, "department_code": "D-NOWHERE"})
    malformed = client.post("/admin/staff/new", data={**LIAISON, "department_code": "城关区"})

    assert unknown.status_code == malformed.status_code == 400
    assert (
        f"no department D-NOWHERE in the current duty directory (version {version.id})"
        in unknown.get_data(as_text=True)
    )
    assert "a department code of the duty directory" in malformed.get_data(as_text=True)
    assert staff_store.find_staff("pema", session=db) is None


def test_an_administrator_adds_and_edits_a_liaison(
    client: FlaskClient, admin: Staff, db: Session
) -> None:
    import_demo_directory(db)

    added = client.post("/admin/staff/new", data={**LIAISON, "department_code": "d-cgq-zjj"})

    assert added.status_code == 302
    pema = reloaded(db, "pema")
    assert pema.department_code == "D-CGQ-ZJJ"
    assert pema.role_set == {Role.DEPARTMENT_LIAISON}
    assert "department D-CGQ-ZJJ" in staff_store.account_history(pema, session=db)[0].detail
    assert "D-CGQ-ZJJ" in client.get("/admin/staff").get_data(as_text=True)
    edit_page = client.get(f"/admin/staff/{pema.id}").get_data(as_text=True)
    assert 'name="department_code" type="text" value="D-CGQ-ZJJ"' in edit_page

    moved = client.post(
        f"/admin/staff/{pema.id}",
        data={
            "display_name": "Pema 白玛",
            "roles": ["department_liaison"],
            "department_code": "D-DZQ-ZJJ",
            "is_active": "y",
        },
    )
    emptied = client.post(
        f"/admin/staff/{pema.id}",
        data={"display_name": "Pema 白玛", "roles": ["department_liaison"], "is_active": "y"},
    )

    assert moved.status_code == 302
    assert emptied.status_code == 400
    assert "needs their department&#39;s code" in emptied.get_data(as_text=True)
    assert reloaded(db, "pema").department_code == "D-DZQ-ZJJ"


# -- the console -----------------------------------------------------------------------


def test_the_console_shows_the_state_and_the_buttons(
    client: FlaskClient, call_taker: Staff
) -> None:
    page = client.get("/console").get_data(as_text=True)

    assert "Offline" in page
    assert 'value="available"' in page
    assert 'id="live-call"' in page  # where the live call screen goes


def test_a_call_taker_goes_available_away_and_offline(
    client: FlaskClient, call_taker: Staff, db: Session
) -> None:
    assert client.post("/console/state", data={"state": "available"}).status_code == 302
    assert reloaded(db, "wang").call_taker.state is CallTakerState.AVAILABLE

    client.post("/console/state", data={"state": "away", "reason": "other", "note": "doctor"})
    wang = reloaded(db, "wang")
    assert wang.call_taker.state is CallTakerState.AWAY
    assert wang.call_taker.away_reason == "other: doctor"

    client.post("/console/state", data={"state": "offline"})
    assert reloaded(db, "wang").call_taker.state is CallTakerState.OFFLINE
    actors = {c.actor for c in staff_store.state_history(call_taker, session=db)}
    assert actors == {f"staff:{call_taker.id}"}


def test_the_console_cannot_set_the_hotlines_states(
    client: FlaskClient, call_taker: Staff, db: Session
) -> None:
    client.post("/console/state", data={"state": "on_call"})

    assert reloaded(db, "wang").call_taker.state is CallTakerState.OFFLINE
    assert "set by the hotline" in client.get("/console").get_data(as_text=True)


def test_an_illegal_move_from_the_console_is_explained(
    client: FlaskClient, call_taker: Staff, db: Session
) -> None:
    staff_store.change_state(call_taker, CallTakerState.AVAILABLE, session=db, actor="t")
    staff_store.change_state(call_taker, CallTakerState.RINGING, session=db, actor="t")
    db.commit()

    client.post("/console/state", data={"state": "offline"})

    assert reloaded(db, "wang").call_taker.state is CallTakerState.RINGING
    assert "cannot go from ringing to offline" in client.get("/console").get_data(as_text=True)


def test_the_console_ends_an_expired_wrap_up(
    client: FlaskClient, call_taker: Staff, db: Session
) -> None:
    profile = call_taker.call_taker
    assert profile is not None
    profile.state = CallTakerState.ON_CALL
    staff_store.change_state(
        call_taker,
        CallTakerState.WRAP_UP,
        session=db,
        actor="system:ivr",
        now=utcnow() - timedelta(minutes=1),
    )
    db.commit()

    page = client.get("/console").get_data(as_text=True)

    assert "Available" in page
    assert reloaded(db, "wang").call_taker.state is CallTakerState.AVAILABLE


def test_during_wrap_up_the_console_counts_down_without_reloading_the_form(
    client: FlaskClient, call_taker: Staff, db: Session
) -> None:
    profile = call_taker.call_taker
    assert profile is not None
    profile.state = CallTakerState.ON_CALL
    staff_store.change_state(
        call_taker, CallTakerState.WRAP_UP, session=db, actor="system:ivr", wrap_up_seconds=30
    )
    db.commit()

    page = client.get("/console").get_data(as_text=True)

    # console.js counts down and the event stream ends the wrap-up: a reload would lose
    # the work-order form the call-taker is filling in.
    assert 'http-equiv="refresh"' not in page
    assert 'id="wrap-up-left">30<' in page or 'id="wrap-up-left">31<' in page
    assert "Ready: end wrap-up" in page
    client.post("/console/state", data={"state": "available"})
    assert reloaded(db, "wang").call_taker.state is CallTakerState.AVAILABLE
