"""Staff for the tests: accounts made through ``tickets.staff`` and logins through the form."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tickets import staff as staff_store
from tickets.models import Role, Staff
from tickets.staff import StaffDetails

PASSWORD = "correct-horse-battery"
TEST_ACTOR = "system:test"
# What HOTLINE_ENV=production needs on top of the test settings.
PRODUCTION = {
    "HOTLINE_ENV": "production",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "f" * 32,
    "SECRET_KEY": "a-long-random-secret",
    "EMERGENCY_FIRE_NUMBER": "+868916000119",
    "EMERGENCY_MEDICAL_NUMBER": "+868916000120",
    "EMERGENCY_POLICE_NUMBER": "+868916000110",
    "EMERGENCY_TRAFFIC_NUMBER": "+868916000122",
    "UTILITY_LINE_NUMBER": "+868916095598",
    "TWILIO_SMS_FROM": "+868916312345",
}


def add_staff(
    db: Session,
    username: str,
    *roles: Role,
    languages: tuple[str, ...] = ("zh",),
    skills: tuple[str, ...] = (),
    phone_number: str | None = "+8613900000001",
    client_identity: str | None = None,
    password: str = PASSWORD,
    display_name: str | None = None,
    department_code: str | None = None,
    commit: bool = True,
) -> Staff:
    """A person holding ``roles`` (a call-taker by default), committed unless told not to.
    A liaison without a ``department_code`` is 城关区住建局's (D-CGQ-ZJJ)."""
    if Role.DEPARTMENT_LIAISON in roles and department_code is None:
        department_code = "D-CGQ-ZJJ"
    details = StaffDetails(
        display_name=display_name or username.title(),
        roles=frozenset(roles or (Role.CALL_TAKER,)),
        languages=languages,
        skills=skills,
        phone_number=phone_number,
        client_identity=client_identity,
        department_code=department_code,
    )
    staff = staff_store.create_staff(username, password, details, session=db, actor=TEST_ACTOR)
    if commit:
        db.commit()
    return staff


def log_in(client: FlaskClient, username: str, password: str = PASSWORD, **kwargs) -> TestResponse:
    return client.post("/login", data={"username": username, "password": password}, **kwargs)


def csrf_token_of(client: FlaskClient, path: str) -> str:
    """The CSRF token a page's form carries (for the tests that keep CSRF on)."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert found, f"no CSRF token on {path}"
    return found.group(1)
