"""``hotline staff ...`` and the demo staff of ``hotline seed``, through click's runner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.gateway import ConsoleGateway
from tests.conftest import make_settings
from tests.support.orders import import_demo_directory
from tests.support.staff import PASSWORD, PRODUCTION, add_staff
from tickets import staff as staff_store
from tickets.models import AccountAction, CallTakerState, Role, Staff
from webapp import create_app
from webapp.cli import main
from webapp.demo import DEMO_PASSWORD, DEMO_STAFF, seed_demo_staff


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def run(runner: FlaskCliRunner, *args: str, **kwargs) -> Result:
    return runner.invoke(main, ["staff", *args], catch_exceptions=False, **kwargs)


def reloaded(db: Session, username: str) -> Staff | None:
    db.expire_all()
    return staff_store.find_staff(username, session=db)


def test_staff_add_with_roles_languages_skills_and_a_phone(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = run(
        runner,
        "add",
        "tenzin",
        "--name",
        "Tenzin 丹增",
        "--role",
        "call_taker",
        "--role",
        "reviewer",
        "--language",
        "zh",
        "--language",
        "bo",
        "--skill",
        "complaint",
        "--phone",
        "+8613900000001",
        input="a-good-password\na-good-password\n",
    )

    assert result.exit_code == 0, result.output
    assert "added tenzin (call_taker, reviewer)" in result.output
    assert "a-good-password" not in result.output  # the prompt hides it
    tenzin = reloaded(db, "tenzin")
    assert tenzin is not None
    assert tenzin.role_set == {Role.CALL_TAKER, Role.REVIEWER}
    assert tenzin.call_taker.languages == ["zh", "bo"]
    assert tenzin.call_taker.skills == ["complaint"]
    assert tenzin.call_taker.phone_number == "+8613900000001"
    assert staff_store.authenticate("tenzin", "a-good-password", session=db) == tenzin
    assert staff_store.account_history(tenzin, session=db)[0].actor == "system:cli"


def test_staff_add_reads_the_password_from_an_environment_variable(
    runner: FlaskCliRunner, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRST_ADMIN_PASSWORD", "from-the-environment")

    result = run(
        runner,
        "add",
        "root",
        "--name",
        "First Admin",
        "--role",
        "administrator",
        "--password-env",
        "FIRST_ADMIN_PASSWORD",
    )

    assert result.exit_code == 0, result.output
    assert staff_store.authenticate("root", "from-the-environment", session=db) is not None


def test_staff_add_explains_what_is_wrong(runner: FlaskCliRunner, db: Session) -> None:
    add_staff(db, "wang")

    taken = run(runner, "add", "wang", "--name", "W", "--role", "reviewer", input="x\nx\n")
    bad = run(
        runner,
        "add",
        "dawa",
        "--name",
        "Dawa",
        "--role",
        "call_taker",
        "--phone",
        "139",
        input="long-enough-pw\nlong-enough-pw\n",
    )
    short = run(runner, "add", "dawa", "--name", "Dawa", "--role", "reviewer", input="abc\nabc\n")
    unknown_role = run(runner, "add", "dawa", "--name", "Dawa", "--role", "boss")
    no_variable = run(
        runner, "add", "dawa", "--name", "D", "--role", "reviewer", "--password-env", "NOPE_X"
    )

    assert taken.exit_code == 1 and "'wang' is already taken" in taken.output
    assert bad.exit_code == 1
    assert "--phone: a phone number in E.164 form" in bad.output
    assert "--language: a call-taker speaks at least one language" in bad.output
    assert short.exit_code == 1 and "password: at least 10 characters" in short.output
    assert unknown_role.exit_code == 2 and "'boss' is not one of" in unknown_role.output
    assert no_variable.exit_code == 2 and "NOPE_X is not set" in no_variable.output
    assert reloaded(db, "dawa") is None


def test_staff_add_a_liaison_needs_a_department_of_the_directory(
    runner: FlaskCliRunner, db: Session
) -> None:
    version = import_demo_directory(db)
    liaison = ("add", "pema", "--name", "Pema 白玛", "--role", "department_liaison")
    password = "a-good-password\na-good-password\n"

    missing = run(runner, *liaison, input=password)
    unknown = run(runner, *liaison, "--department", "D-NOWHERE", input=password)
    added = run(runner, *liaison, "--department", "D-CGQ-ZJJ", input=password)

    assert missing.exit_code == 1
    assert "--department: a department liaison needs their department's code" in missing.output
    assert unknown.exit_code == 1
    assert (
        f"--department: no department D-NOWHERE in the current duty directory"
        f" (version {version.id})" in unknown.output
    )
    assert added.exit_code == 0, added.output
    pema = reloaded(db, "pema")
    assert pema is not None and pema.department_code == "D-CGQ-ZJJ"
    assert "department D-CGQ-ZJJ" in run(runner, "list").output


def test_staff_list(runner: FlaskCliRunner, db: Session) -> None:
    add_staff(db, "tenzin", languages=("bo", "zh"))
    add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)
    closed = add_staff(db, "old", phone_number="+8613900000002")
    staff_store.deactivate_staff(closed, session=db, actor="system:test")
    db.commit()

    lines = run(runner, "list").output.splitlines()

    assert [line.split()[0] for line in lines] == ["admin", "tenzin", "old"]
    assert "zh,bo" in lines[1] and "offline" in lines[1]
    assert lines[2].endswith("(deactivated)")


def test_staff_set_password(runner: FlaskCliRunner, db: Session) -> None:
    add_staff(db, "wang")

    result = run(runner, "set-password", "wang", input="a-new-password\na-new-password\n")
    missing = run(runner, "set-password", "nobody", input="a-new-password\na-new-password\n")

    assert result.exit_code == 0, result.output
    db.expire_all()
    assert staff_store.authenticate("wang", "a-new-password", session=db) is not None
    assert staff_store.authenticate("wang", PASSWORD, session=db) is None
    assert missing.exit_code == 1 and "no staff member is called 'nobody'" in missing.output


def test_staff_deactivate(runner: FlaskCliRunner, db: Session) -> None:
    wang = add_staff(db, "wang")
    staff_store.change_state(wang, CallTakerState.AVAILABLE, session=db, actor="system:test")
    db.commit()

    first = run(runner, "deactivate", "wang")
    again = run(runner, "deactivate", "wang")
    missing = run(runner, "deactivate", "nobody")

    assert first.exit_code == 0 and "deactivated wang" in first.output
    assert again.exit_code == 0 and "already deactivated" in again.output
    assert missing.exit_code == 1
    wang = reloaded(db, "wang")
    assert not wang.is_active
    assert wang.call_taker.state is CallTakerState.OFFLINE
    actions = [c.action for c in staff_store.account_history(wang, session=db)]
    assert actions[0] is AccountAction.DEACTIVATED


def test_the_last_administrator_cannot_be_deactivated(runner: FlaskCliRunner, db: Session) -> None:
    add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)

    result = run(runner, "deactivate", "admin")

    assert result.exit_code == 1
    assert "last active administrator" in result.output


# -- demo staff --------------------------------------------------------------------------


def test_seed_adds_the_demo_staff_once(runner: FlaskCliRunner, db: Session) -> None:
    first = runner.invoke(main, ["seed"], catch_exceptions=False)
    second = runner.invoke(main, ["seed"], catch_exceptions=False)

    assert first.exit_code == 0 and second.exit_code == 0
    assert "demo staff tenzin (call_taker), password hotline-demo" in first.output
    assert "demo staff tenzin already there" in second.output
    people = staff_store.list_staff(session=db)
    assert {p.username for p in people} == {username for username, _ in DEMO_STAFF}
    by_name = {p.username: p for p in people}
    assert by_name["tenzin"].call_taker.languages == ["zh", "bo"]
    assert by_name["emma"].call_taker.languages == ["zh", "en"]
    assert by_name["wang"].call_taker.languages == ["zh"]
    assert by_name["wang"].call_taker.skills == ["complaint", "help"]
    assert by_name["manager"].has_role(Role.FLOOR_MANAGER)
    assert by_name["admin"].has_role(Role.ADMINISTRATOR)
    assert by_name["liaison.cgq.zjj"].department_code == "D-CGQ-ZJJ"
    for username in by_name:
        assert staff_store.authenticate(username, DEMO_PASSWORD, session=db) is not None


@pytest.fixture
def production_app(database_url: str, engine: Engine) -> Iterator[Flask]:
    app = create_app(make_settings(database_url, **PRODUCTION), gateway=ConsoleGateway())
    yield app
    app.extensions["hotline.engine"].dispose()


def test_no_demo_staff_in_production(production_app: Flask, engine: Engine, db: Session) -> None:
    lines = list(seed_demo_staff(engine, production_app.config["HOTLINE_SETTINGS"]))

    assert lines == ["demo staff not seeded: HOTLINE_ENV=production (use `hotline staff add`)"]
    assert staff_store.list_staff(session=db) == []
