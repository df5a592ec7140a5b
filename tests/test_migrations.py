"""The migrations on the configured database (SQLite, or PostgreSQL via DATABASE_URL).

The session's ``engine`` fixture has already upgraded the schema to head, and expects it
at head again when these tests are done: every test that moves the schema restores it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine, inspect, text

import tickets.models  # noqa: F401  (registers the tables on the metadata, as env.py does)
from tickets.db import Base
from webapp.cli import ROOT, alembic_config

EXPECTED_TABLES = {"calls", "call_events", "work_orders", "work_order_history"}
VERSIONS = ROOT / "migrations" / "versions"
MIGRATION_FILES = sorted(VERSIONS.glob("*.py"))
GENERIC_DOCSTRINGS = re.compile(
    r"^(empty message|initial|init|migration|auto|autogenerate|update|changes?|wip|todo|"
    r"revision \w+|upgrade schema|downgrade schema)\.?$",
    re.IGNORECASE,
)


@pytest.fixture
def config(database_url: str) -> Config:
    config = alembic_config(database_url)
    config.attributes["configure_logger"] = False  # keep pytest's log capture as it is
    return config


@pytest.fixture
def script(config: Config) -> ScriptDirectory:
    return ScriptDirectory.from_config(config)


@pytest.fixture
def schema_restored(engine: Engine, config: Config) -> Iterator[None]:
    """Whatever a test does to the schema, leave it at head for the rest of the session."""
    yield
    command.upgrade(config, "head")


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def revisions_oldest_first(script: ScriptDirectory) -> list[Script]:
    return list(reversed(list(script.walk_revisions("base", "heads"))))


# -- (a) models and migrations agree ----------------------------------------------------


def test_the_models_and_the_migrations_do_not_drift(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "target_metadata": Base.metadata,
                "render_as_batch": True,
                "compare_type": True,
            },
        )
        diff = compare_metadata(context, Base.metadata)

    assert diff == [], "the models differ from the migrations; add a migration:\n" + "\n".join(
        map(repr, diff)
    )


def test_the_database_is_at_the_single_head(engine: Engine, script: ScriptDirectory) -> None:
    heads = script.get_heads()

    assert len(heads) == 1, f"the migrations have several heads, merge them: {heads}"
    assert current_revision(engine) == heads[0]


def test_every_model_table_is_created_by_the_migrations(engine: Engine) -> None:
    tables = table_names(engine)

    assert tables >= EXPECTED_TABLES
    assert tables >= set(Base.metadata.tables)


# -- (b) down and up again ----------------------------------------------------------------


@pytest.mark.usefixtures("schema_restored")
def test_downgrade_to_base_then_upgrade_to_head_again(
    engine: Engine, config: Config, script: ScriptDirectory
) -> None:
    command.downgrade(config, "base")

    assert current_revision(engine) is None
    assert not table_names(engine) & (EXPECTED_TABLES | set(Base.metadata.tables))
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            leftover_types = connection.execute(
                text(
                    "SELECT t.typname FROM pg_type t "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = current_schema() AND t.typtype = 'e'"
                )
            ).scalars()
            assert list(leftover_types) == []

    command.upgrade(config, "head")

    assert current_revision(engine) == script.get_current_head()
    assert table_names(engine) >= EXPECTED_TABLES | set(Base.metadata.tables)


@pytest.mark.usefixtures("schema_restored")
def test_every_migration_goes_down_and_up_again_one_step_at_a_time(
    engine: Engine, config: Config, script: ScriptDirectory
) -> None:
    """The stairway: each revision's downgrade undoes its upgrade, so it can run again."""
    command.downgrade(config, "base")

    for revision in revisions_oldest_first(script):
        command.upgrade(config, revision.revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision.revision)
        assert current_revision(engine) == revision.revision

    assert table_names(engine) >= EXPECTED_TABLES


# -- (c) every migration says what it does -----------------------------------------------


def test_upgrading_a_database_with_work_orders_keeps_them(
    engine: Engine, config: Config, schema_restored: None
) -> None:
    """Batch mode rebuilds SQLite tables: rows that point at them must survive (issue seen
    on a development database: 'FOREIGN KEY constraint failed')."""
    command.downgrade(config, "9bb69356e8b6")  # the staff tables: before work-order changes
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO work_orders (number, kind, state, is_urgent, summary, created_at,"
                " updated_at) VALUES ('20261127000001', 'consultation', 'received', false,"
                " 'kept', '2026-11-27 00:00:00', '2026-11-27 00:00:00')"
            )
        )
        order_id = connection.execute(text("SELECT id FROM work_orders")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO work_order_history (work_order_id, actor, to_state, reason, at)"
                " VALUES (:id, 'test', 'received', 'kept', '2026-11-27 00:00:00')"
            ),
            {"id": order_id},
        )

    command.upgrade(config, "head")

    with engine.connect() as connection:
        assert connection.execute(text("SELECT summary FROM work_orders")).scalar_one() == "kept"
        history = connection.execute(text("SELECT work_order_id FROM work_order_history"))
        assert history.scalar_one() == order_id
    assert current_revision(engine) == ScriptDirectory.from_config(config).get_current_head()


def test_there_are_migration_files() -> None:
    assert MIGRATION_FILES


@pytest.mark.parametrize("path", MIGRATION_FILES, ids=lambda path: path.name)
def test_every_migration_file_has_a_descriptive_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))

    assert docstring, f"{path.name} has no docstring"
    summary = docstring.strip().splitlines()[0].strip()
    assert not GENERIC_DOCSTRINGS.match(summary), f"{path.name}: {summary!r} says nothing"
    assert not summary.lower().startswith("revision id"), path.name
    assert len(summary.split()) >= 3, f"{path.name}: {summary!r} is too short to describe it"


def test_every_revision_has_a_descriptive_message(script: ScriptDirectory) -> None:
    for revision in script.walk_revisions():
        assert revision.doc, revision.path
        assert revision.doc.strip().lower() != "empty message", revision.path


def test_every_migration_file_name_carries_its_revision_id(script: ScriptDirectory) -> None:
    for revision in script.walk_revisions():
        assert revision.revision in Path(revision.path).name, revision.path
