"""``hotline staff ...``: add, list, set a password, deactivate (for the first administrator,
and for scripts). Changes are recorded as made by ``system:cli``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from tickets import staff as staff_store
from tickets.models import Role
from tickets.staff import LANGUAGES, SKILLS, StaffDetails
from webapp.staff.forms import department_problem

ACTOR = "system:cli"


@contextmanager
def _transaction() -> Iterator[Session]:
    with Session(current_app.extensions["hotline.engine"]) as session, session.begin():
        yield session


def _password(password_env: str | None, prompt: str) -> str:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise click.UsageError(f"the environment variable {password_env} is not set")
        return value
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


def _invalid(error: staff_store.InvalidStaff) -> click.ClickException:
    option = {
        "display_name": "--name",
        "phone_number": "--phone",
        "client_identity": "--client",
        "languages": "--language",
        "skills": "--skill",
        "roles": "--role",
        "department_code": "--department",
    }
    lines = [f"  {option.get(name, name)}: {problem}" for name, problem in error.errors.items()]
    return click.ClickException("the account was not saved:\n" + "\n".join(lines))


@click.group("staff")
def staff_group() -> None:
    """Staff accounts: add, list, set-password, deactivate."""


password_env_option = click.option(
    "--password-env",
    metavar="VAR",
    help="Read the password from this environment variable instead of a prompt.",
)


@staff_group.command("add")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="The person's full name.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="Repeat for several roles.",
)
@click.option("--language", "languages", multiple=True, type=click.Choice(LANGUAGES))
@click.option("--skill", "skills", multiple=True, type=click.Choice(SKILLS))
@click.option("--phone", help="The phone that rings for a call, E.164 (+8613900000001).")
@click.option("--client", "client_identity", help="Browser softphone (Twilio Client) identity.")
@click.option(
    "--department",
    "department_code",
    metavar="CODE",
    help="A department liaison's department: its duty-directory code (D-CGQ-ZJJ).",
)
@password_env_option
@with_appcontext
def add_command(
    username: str,
    display_name: str,
    roles: tuple[str, ...],
    languages: tuple[str, ...],
    skills: tuple[str, ...],
    phone: str | None,
    client_identity: str | None,
    department_code: str | None,
    password_env: str | None,
) -> None:
    """Add an account; the password is asked for (or read with --password-env)."""
    details = StaffDetails(
        display_name=display_name,
        roles=frozenset(Role(r) for r in roles),
        languages=languages,
        skills=skills,
        phone_number=phone,
        client_identity=client_identity,
        department_code=department_code,
    )
    with _transaction() as session:
        if staff_store.find_staff(username, session=session) is not None:
            raise click.ClickException(f"{username!r} is already taken")
        # Checked before the password prompt: no typing for nothing.
        errors: dict[str, str] = {}
        try:
            details.checked()
        except staff_store.InvalidStaff as error:
            errors.update(error.errors)
        problem = department_problem(department_code, session=session)
        if problem:
            errors.setdefault("department_code", problem)
        if errors:
            raise _invalid(staff_store.InvalidStaff(errors))
        password = _password(password_env, "Password")
        try:
            staff = staff_store.create_staff(
                username, password, details, session=session, actor=ACTOR
            )
        except staff_store.InvalidStaff as error:
            raise _invalid(error) from error
        click.echo(f"added {staff.username} ({', '.join(sorted(roles))})")


@staff_group.command("list")
@with_appcontext
def list_command() -> None:
    """Everyone, with roles, languages and state."""
    with _transaction() as session:
        for staff in staff_store.list_staff(session=session):
            profile = staff.call_taker
            parts = [
                staff.username.ljust(16),
                staff.display_name.ljust(20),
                ",".join(sorted(r.value for r in staff.role_set)).ljust(28),
            ]
            if profile is not None:
                parts.append(",".join(profile.languages).ljust(9))
                if staff.has_role(Role.CALL_TAKER):
                    parts.append(profile.state.value)
            if staff.department_code:
                parts.append(f"department {staff.department_code}")
            if not staff.is_active:
                parts.append("(deactivated)")
            click.echo(" ".join(parts).rstrip())


@staff_group.command("set-password")
@click.argument("username")
@password_env_option
@with_appcontext
def set_password_command(username: str, password_env: str | None) -> None:
    """Set a new password; the person's open logins end."""
    with _transaction() as session:
        staff = staff_store.find_staff(username, session=session)
        if staff is None:
            raise click.ClickException(f"no staff member is called {username!r}")
        password = _password(password_env, "New password")
        try:
            staff_store.set_password(staff, password, session=session, actor=ACTOR)
        except staff_store.InvalidStaff as error:
            raise _invalid(error) from error
        click.echo(f"new password set for {staff.username}")


@staff_group.command("deactivate")
@click.argument("username")
@with_appcontext
def deactivate_command(username: str) -> None:
    """Close an account: no more logins, off the call-taker rota. Nothing is deleted."""
    with _transaction() as session:
        staff = staff_store.find_staff(username, session=session)
        if staff is None:
            raise click.ClickException(f"no staff member is called {username!r}")
        if not staff.is_active:
            click.echo(f"{staff.username} was already deactivated")
            return
        try:
            staff_store.deactivate_staff(staff, session=session, actor=ACTOR)
        except staff_store.StaffError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"deactivated {staff.username}")
