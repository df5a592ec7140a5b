"""The ``hotline`` command: migrate, seed demo data, place simulated calls."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from ivr.config import EXTENSION_KEY
from ivr.gateway import ConsoleGateway
from ivr.simulator import make_simulator, run_cli
from ivr.simulator_phones import Phone, SimulatedPhones
from webapp import create_app
from webapp.demo import seed_demo_data
from webapp.directory.cli import directory_group
from webapp.drainer import drain_all, run_drainer
from webapp.settings import Settings, SettingsError
from webapp.sms_cli import sms_group
from webapp.staff.cli import staff_group
from webapp.survey_cli import survey_call_command

ROOT = Path(__file__).resolve().parent.parent


def _create_app() -> Flask:
    try:
        return create_app()
    except SettingsError as error:
        click.echo(f"Configuration error: {error}", err=True)
        sys.exit(2)


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """The 12345 hotline."""


main.add_command(staff_group)
main.add_command(directory_group)
main.add_command(sms_group)
main.add_command(survey_call_command)


@main.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Bring the database schema up to date (Procfile: release)."""
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    command.upgrade(alembic_config(settings.database_url), "head")
    click.echo("database is up to date")


@main.command("seed")
@with_appcontext
def seed_command() -> None:
    """Add the demo work orders, staff and duty directory (idempotent)."""
    for line in seed_demo_data(
        current_app.extensions["hotline.engine"], current_app.config["HOTLINE_SETTINGS"]
    ):
        click.echo(line)


@main.command("call")
@click.option(
    "--from",
    "from_number",
    default="+8613800000001",
    show_default=True,
    help="The caller's number (or anonymous, client:name).",
)
@click.option("--to", "to_number", default=None, help="The hotline number called.")
@click.option(
    "--press", default="", help="Keys for each menu in turn, e.g. 1,2 or 4,20261127000001#"
)
@click.option("--say", "speech", multiple=True, help="Say this at the next menu (repeatable).")
@click.option(
    "--url",
    default=None,
    help="A running server, e.g. http://127.0.0.1:5000; without it the call runs in process.",
)
@click.option("--interactive", is_flag=True, help="Ask for keys when the script runs out.")
@click.option(
    "--phone",
    "phones",
    multiple=True,
    metavar="NUMBER=BEHAVIOUR",
    help="In process: how a phone the hotline rings behaves (answer, no-answer, busy, ring, "
    "failed, hang-up; others answer), e.g. --phone +8613900000001=no-answer.",
)
@with_appcontext
def call_command(
    from_number: str,
    to_number: str | None,
    press: str,
    speech: tuple[str, ...],
    url: str | None,
    interactive: bool,
    phones: tuple[str, ...],
) -> None:
    """Place a simulated call: plays Twilio's part and prints what the caller hears."""
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    inputs = [key.strip() for key in press.split(",")] if press else []
    inputs += [f"speech:{text}" for text in speech]
    simulator = make_simulator(
        auth_token=settings.webhook_auth_token,
        public_base_url=settings.public_base_url,
        url=url,
        app=None if url else current_app,
        phones=None if url else _simulated_phones(phones),
    )
    sys.exit(
        run_cli(simulator, from_number, to_number or settings.hotline_number, inputs, interactive)
    )


def _simulated_phones(specs: tuple[str, ...]) -> SimulatedPhones | None:
    """Twilio's side of the legs the app rings, when it runs here on the console gateway."""
    gateway = current_app.extensions[EXTENSION_KEY].gateway
    if not isinstance(gateway, ConsoleGateway):
        return None
    behaviours: dict[str, Phone] = {}
    for spec in specs:
        number, _, behaviour = spec.partition("=")
        try:
            behaviours[number.strip()] = Phone(behaviour.strip())
        except ValueError as error:
            choices = ", ".join(phone.value for phone in Phone)
            raise click.BadParameter(f"{spec!r}: the behaviour is one of {choices}") from error
    return SimulatedPhones(gateway, behaviours)


@main.command("drain")
@click.option("--follow", is_flag=True, help="keep draining until stopped (the drainer)")
@click.option("--parent-pid", type=int, help="with --follow: stop when this process is gone")
@with_appcontext
def drain_command(follow: bool, parent_pid: int | None) -> None:
    """Store the journaled webhooks (after a database outage, or without a drainer)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if follow:
        run_drainer(app, parent_pid)
        return
    try:
        stored, pending = drain_all(app)
    except Exception as error:
        raise click.ClickException(f"the database is not reachable: {error}") from error
    click.echo(f"stored {stored} journaled webhooks; {pending} still pending")


if __name__ == "__main__":  # python -m webapp.cli (how the gunicorn config starts the drainer)
    main()
