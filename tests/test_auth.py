"""Logins, roles and CSRF: through the app's test client on the real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.gateway import ConsoleGateway
from tests.conftest import AUTH_TOKEN, make_settings
from tests.support.staff import PASSWORD, PRODUCTION, add_staff, csrf_token_of, log_in
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets import staff as staff_store
from tickets.models import CallTakerState, Role
from webapp import create_app
from webapp.auth import roles_required


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser; CSRF is off here (the tests that prove it is enforced turn it on)."""
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


@pytest.fixture
def csrf_client(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = True
    return app.test_client()


# -- logging in and out ----------------------------------------------------------------


def test_the_login_page_is_a_form(client: FlaskClient) -> None:
    page = client.get("/login")

    assert page.status_code == 200
    assert 'name="username"' in page.get_data(as_text=True)
    assert 'type="password"' in page.get_data(as_text=True)


def test_a_call_taker_logs_in_and_lands_on_the_console(client: FlaskClient, db: Session) -> None:
    add_staff(db, "wang")

    response = log_in(client, "wang")

    assert response.status_code == 302
    assert response.headers["Location"] == "/console"
    assert client.get("/console").status_code == 200


def test_an_administrator_lands_on_the_staff_list(client: FlaskClient, db: Session) -> None:
    add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)

    assert log_in(client, "Admin").headers["Location"] == "/admin/staff"


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    client: FlaskClient, db: Session
) -> None:
    add_staff(db, "wang")

    wrong = log_in(client, "wang", "not-the-password")
    unknown = log_in(client, "nobody", PASSWORD)

    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/console").status_code == 302


def test_a_deactivated_person_cannot_log_in(client: FlaskClient, db: Session) -> None:
    staff = add_staff(db, "wang")
    staff_store.deactivate_staff(staff, session=db, actor="system:test")
    db.commit()

    response = log_in(client, "wang")

    assert response.status_code == 400
    assert "deactivated" in response.get_data(as_text=True)
    assert client.get("/console").status_code == 302


def test_logging_out_ends_the_login_and_sends_a_free_call_taker_offline(
    client: FlaskClient, db: Session
) -> None:
    staff = add_staff(db, "wang")
    staff_store.change_state(staff, CallTakerState.AVAILABLE, session=db, actor="system:test")
    db.commit()
    log_in(client, "wang")

    response = client.post("/logout")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/console").status_code == 302
    db.expire_all()
    assert staff.call_taker is not None
    assert staff.call_taker.state is CallTakerState.OFFLINE
    assert staff_store.state_history(staff, session=db)[0].reason == "logged out"


def test_logout_is_a_post(client: FlaskClient, db: Session) -> None:
    add_staff(db, "wang")
    log_in(client, "wang")

    assert client.get("/logout").status_code == 405


def test_the_anonymous_are_sent_to_the_login_page_and_back(
    client: FlaskClient, db: Session
) -> None:
    add_staff(db, "wang")

    response = client.get("/console")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert log_in(client, "wang", query_string={"next": "/console"}).headers["Location"] == (
        "/console"
    )


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_never_redirects_off_the_site(client: FlaskClient, db: Session, target: str) -> None:
    add_staff(db, "wang")

    response = log_in(client, "wang", query_string={"next": target})

    assert response.headers["Location"] == "/console"


def test_a_new_password_ends_the_open_logins(client: FlaskClient, db: Session) -> None:
    staff = add_staff(db, "wang")
    log_in(client, "wang")
    assert client.get("/console").status_code == 200

    staff_store.set_password(staff, "a-brand-new-password", session=db, actor="system:test")
    db.commit()

    assert client.get("/console").status_code == 302


def test_deactivation_ends_the_open_logins(client: FlaskClient, db: Session) -> None:
    staff = add_staff(db, "wang")
    log_in(client, "wang")

    staff_store.deactivate_staff(staff, session=db, actor="system:test")
    db.commit()

    assert client.get("/console").status_code == 302


# -- roles -----------------------------------------------------------------------------


def test_a_page_for_another_role_is_403_not_a_login_page(client: FlaskClient, db: Session) -> None:
    add_staff(db, "reviewer", Role.REVIEWER, languages=(), phone_number=None)
    log_in(client, "reviewer")

    for path in ("/console", "/admin/staff", "/admin/staff/new"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.get_data(as_text=True)
    assert client.post("/console/state", data={"state": "available"}).status_code == 403
    assert client.get("/").status_code == 200  # their home page


def test_roles_required_lets_in_any_one_of_the_roles(app: Flask, db: Session) -> None:
    @app.get("/_test/reviewing")
    @roles_required(Role.REVIEWER, Role.QUALITY_INSPECTOR)
    def reviewing() -> str:
        return "ok"

    app.config["WTF_CSRF_ENABLED"] = False
    add_staff(db, "inspector", Role.QUALITY_INSPECTOR, languages=(), phone_number=None)
    add_staff(db, "wang")
    inspector, call_taker, anonymous = app.test_client(), app.test_client(), app.test_client()
    log_in(inspector, "inspector")
    log_in(call_taker, "wang")

    assert inspector.get("/_test/reviewing").get_data(as_text=True) == "ok"
    assert call_taker.get("/_test/reviewing").status_code == 403
    assert anonymous.get("/_test/reviewing").status_code == 302


# -- CSRF ------------------------------------------------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused(
    csrf_client: FlaskClient, db: Session
) -> None:
    add_staff(db, "wang")

    refused = log_in(csrf_client, "wang")
    assert refused.status_code == 400
    assert "security token" in refused.get_data(as_text=True)

    token = csrf_token_of(csrf_client, "/login")
    accepted = csrf_client.post(
        "/login", data={"username": "wang", "password": PASSWORD, "csrf_token": token}
    )
    assert accepted.status_code == 302

    assert csrf_client.post("/console/state", data={"state": "available"}).status_code == 400
    assert csrf_client.post("/logout").status_code == 400
    assert csrf_client.get("/console").status_code == 200  # still logged in

    token = csrf_token_of(csrf_client, "/console")
    changed = csrf_client.post("/console/state", data={"state": "available", "csrf_token": token})
    assert changed.status_code == 302
    db.expire_all()
    assert staff_store.get_staff("wang", session=db).call_taker.state is CallTakerState.AVAILABLE


def test_every_voice_route_is_exempt_from_csrf_and_every_staff_form_is_not(app: Flask) -> None:
    csrf = app.extensions["csrf"]
    exempt = {blueprint.name for blueprint in csrf._exempt_blueprints}

    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if rule.rule.startswith("/voice"):
            assert blueprint in exempt, rule.rule
        elif rule.rule.startswith("/api/") and "POST" in (rule.methods or ()):
            assert blueprint in exempt, rule.rule  # bearer tokens, no cookies: no CSRF
        elif "POST" in (rule.methods or ()):
            assert blueprint not in exempt, rule.rule


def test_a_signed_webhook_still_works_with_csrf_on_and_sets_no_cookie(
    app: Flask, csrf_client: FlaskClient
) -> None:
    twilio = TwilioSender(
        csrf_client,
        AUTH_TOKEN,
        app.config["HOTLINE_SETTINGS"].public_base_url,
    )

    response = twilio.post("/voice/incoming", call_params(new_call_sid()))

    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers  # the session was not even looked at


# -- cookies ---------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_and_samesite_lax(client: FlaskClient, db: Session) -> None:
    add_staff(db, "wang")

    cookie = log_in(client, "wang").headers["Set-Cookie"]

    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # not production: plain http on a laptop
    assert "Expires=" in cookie  # STAFF_SESSION_HOURS


@pytest.fixture
def production_app(database_url: str, engine: Engine) -> Iterator[Flask]:
    app = create_app(make_settings(database_url, **PRODUCTION), gateway=ConsoleGateway())
    app.config["WTF_CSRF_ENABLED"] = False
    yield app
    app.extensions["hotline.engine"].dispose()


def test_in_production_the_session_cookie_is_secure(production_app: Flask, db: Session) -> None:
    add_staff(db, "wang")

    cookie = log_in(production_app.test_client(), "wang").headers["Set-Cookie"]

    assert "Secure" in cookie
    assert "HttpOnly" in cookie
