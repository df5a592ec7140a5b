"""``hotline api-client ...``: add a system that calls the JSON API (its token is printed
once, and only its SHA-256 is kept), list them, deactivate one. Recorded as made by
``system:cli``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from webapp.api import clients

ACTOR = "system:cli"


@contextmanager
def _transaction() -> Iterator[Session]:
    with Session(current_app.extensions["hotline.engine"]) as session, session.begin():
        yield session


@click.group("api-client")
def api_client_group() -> None:
    """Systems that call the JSON API (/api/v1): add, list, deactivate."""


@api_client_group.command("add")
@click.argument("name")
@click.option(
    "--department",
    "department_code",
    help="The department's code in the duty directory: the client sees that department's"
    " orders only. Without it, the client reads every order (the provincial platform).",
)
@with_appcontext
def add_command(name: str, department_code: str | None) -> None:
    """Add a client and print its token (shown this once: store it in the client system)."""
    with _transaction() as session:
        try:
            client, token = clients.add_client(
                name, department_code=department_code, actor=ACTOR, session=session
            )
        except clients.ApiClientError as error:
            raise click.ClickException(str(error)) from error
        scope = f"department {client.department_code}" if client.department_code else "all orders"
    click.echo(f"added API client {name} ({scope})")
    click.echo("its token (shown only now; send it as 'Authorization: Bearer <token>'):")
    click.echo(token)


@api_client_group.command("list")
@with_appcontext
def list_command() -> None:
    """Every client: scope, when it was added and last used, whether it is active."""
    with _transaction() as session:
        for client in clients.list_clients(session=session):
            last = f"{client.last_used_at:%Y-%m-%d %H:%M} UTC" if client.last_used_at else "never"
            parts = [
                client.name.ljust(24),
                (client.department_code or "(all orders)").ljust(16),
                f"added {client.created_at:%Y-%m-%d} by {client.created_by},",
                f"last used {last}",
            ]
            if not client.is_active:
                parts.append("(deactivated)")
            click.echo(" ".join(parts))


@api_client_group.command("deactivate")
@click.argument("name")
@with_appcontext
def deactivate_command(name: str) -> None:
    """Refuse the client's token from now on. Nothing is deleted."""
    with _transaction() as session:
        client = clients.find_client(name, session=session)
        if client is None:
            raise click.ClickException(f"no API client is called {name!r}")
        if not client.is_active:
            click.echo(f"{client.name} was already deactivated")
            return
        clients.deactivate_client(client)
        click.echo(f"deactivated {client.name}: its token is refused from now on")
