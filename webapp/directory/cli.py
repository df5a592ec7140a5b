"""``hotline directory ...``: import the duty directory from CSV files, show what is current,
list the versions. Imports are recorded as made by ``system:cli``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets.directory_import import DirectoryInvalid
from webapp.directory.files import FilesNotFound, directory_files

ACTOR = "system:cli"
MAX_SHOWN = 200  # line errors printed; the rest are counted


@contextmanager
def _transaction() -> Iterator[Session]:
    with Session(current_app.extensions["hotline.engine"]) as session, session.begin():
        yield session


def invalid_message(error: DirectoryInvalid, limit: int = MAX_SHOWN) -> str:
    lines = [f"  {problem}" for problem in error.problems[:limit]]
    if len(error.problems) > limit:
        lines.append(f"  ... and {len(error.problems) - limit} more")
    count = len(error.problems)
    return (
        f"the directory was not imported (nothing changed), {count}"
        f" problem{'s' if count != 1 else ''}:\n" + "\n".join(lines)
    )


@click.group("directory")
def directory_group() -> None:
    """The duty directory (职责清单): import, show, versions."""


@directory_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--note", default="", help="Why this import (kept with the version).")
@with_appcontext
def import_command(paths: tuple[Path, ...], note: str) -> None:
    """Import a new version from DIR (holding categories.csv, departments.csv, items.csv) or
    from the three files. All or nothing: any line error changes nothing."""
    try:
        found = directory_files(paths)
    except FilesNotFound as error:
        raise click.UsageError(str(error)) from error
    files = {name: path.read_bytes() for name, path in found.items()}
    try:
        with _transaction() as session:
            version = directory_store.import_directory(
                files,
                session=session,
                actor=ACTOR,
                note=note,
                file_names={name: path.name for name, path in found.items()},
            )
            lines = [
                f"imported directory version {version.id}",
                *directory_store.summarize(version, session=session).lines(),
            ]
    except DirectoryInvalid as error:
        raise click.ClickException(invalid_message(error)) from error
    except directory_store.DirectoryError as error:
        raise click.ClickException(str(error)) from error
    for line in lines:
        click.echo(line)


@directory_group.command("show")
@click.option("--version", "version_id", type=int, help="A past version (default: the current).")
@with_appcontext
def show_command(version_id: int | None) -> None:
    """What the current (or a given) version holds."""
    with _transaction() as session:
        try:
            version = (
                directory_store.get_version(version_id, session=session)
                if version_id is not None
                else directory_store.get_current_version(session=session)
            )
        except directory_store.DirectoryNotFound as error:
            hint = "" if version_id else " (hotline directory import DIR)"
            raise click.ClickException(f"{error}{hint}") from error
        for line in directory_store.summarize(version, session=session).lines():
            click.echo(line)


@directory_group.command("versions")
@with_appcontext
def versions_command() -> None:
    """Every version, newest first."""
    with _transaction() as session:
        versions = directory_store.list_versions(session=session)
        if not versions:
            click.echo("no directory imported yet")
        for v in versions:
            click.echo(
                f"{v.id:>5} {'*' if v.is_current else ' '} {v.kind.value:<6}"
                f" {v.created_at:%Y-%m-%d %H:%M} {v.created_by:<16}"
                f" {v.item_count} items, {v.department_count} departments"
                + (f"  {v.note}" if v.note else "")
            )
