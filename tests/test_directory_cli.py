"""``hotline directory ...`` and the demo directory of ``hotline seed``, through click's runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from tests.test_directory import SAMPLE, changed, line_of, sample
from tickets import directory as directory_store
from tickets.directory_import import FILES, ITEMS
from webapp.cli import main
from webapp.demo import seed_demo_directory


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def run(runner: FlaskCliRunner, *args: str) -> Result:
    return runner.invoke(main, ["directory", *args])


def written(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_import_a_folder_then_show_it(runner: FlaskCliRunner, db: Session) -> None:
    result = run(runner, "import", str(SAMPLE), "--note", "the 2026 list")

    assert result.exit_code == 0, result.output
    assert "imported directory version" in result.output
    assert "12 categories, 212 departments" in result.output
    assert "815 items (364 city, 403 county, 48 township; 42 urgent)" in result.output
    version = directory_store.get_current_version(session=db)
    assert version.created_by == "system:cli"
    assert version.note == "the 2026 list"

    shown = run(runner, "show")
    assert shown.exit_code == 0
    assert f"version {version.id} (current): import by system:cli" in shown.output
    assert "source: items.csv sha256" in shown.output
    assert "C01 城乡建设: 95 items" in shown.output


def test_import_the_three_files_by_name(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    paths = []
    for name in FILES:
        path = tmp_path / name.replace(".csv", "-2026.csv")
        shutil.copy(SAMPLE / name, path)
        paths.append(str(path))

    result = run(runner, "import", *reversed(paths))

    assert result.exit_code == 0, result.output
    version = directory_store.get_current_version(session=db)
    assert {s["file"] for s in version.source} == {
        "categories-2026.csv",
        "departments-2026.csv",
        "items-2026.csv",
    }


def test_a_bad_file_lists_the_line_errors_and_changes_nothing(
    runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    assert run(runner, "import", str(SAMPLE)).exit_code == 0
    before = directory_store.get_current_version(session=db).id
    files = changed(sample(), ITEMS, "C01-017", level="provincial")
    files = changed(files, ITEMS, "C03-002", urgent="maybe")

    result = run(runner, "import", str(written(tmp_path / "bad", files)))

    assert result.exit_code == 1
    assert "the directory was not imported (nothing changed), 2 problems:" in result.output
    line = line_of(files, ITEMS, "C01-017")
    assert (
        f"items.csv line {line}: level must be city, county or township, not 'provincial'"
        in result.output
    )
    assert f"items.csv line {line_of(files, ITEMS, 'C03-002')}: urgent must be" in result.output
    db.expire_all()
    assert [v.id for v in directory_store.list_versions(session=db)] == [before]


def test_a_folder_without_the_files_is_a_usage_error(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    result = run(runner, "import", str(tmp_path))

    assert result.exit_code == 2
    assert "items.csv" in result.output


def test_show_before_any_import_says_what_to_do(runner: FlaskCliRunner) -> None:
    result = run(runner, "show")

    assert result.exit_code == 1
    assert "no duty directory has been imported yet" in result.output
    assert "hotline directory import DIR" in result.output


def test_versions_lists_every_version_newest_first(runner: FlaskCliRunner) -> None:
    run(runner, "import", str(SAMPLE), "--note", "first")
    run(runner, "import", str(SAMPLE), "--note", "second")

    lines = run(runner, "versions").output.splitlines()

    assert len(lines) == 2
    assert "*" in lines[0] and lines[0].endswith("second")
    assert "*" not in lines[1] and lines[1].endswith("first")


def test_the_demo_seed_imports_the_sample_once(app: Flask, db: Session) -> None:
    engine = app.extensions["hotline.engine"]
    settings = app.config["HOTLINE_SETTINGS"]

    first = list(seed_demo_directory(engine, settings))
    again = list(seed_demo_directory(engine, settings))

    assert len(first) == 1
    assert first[0].startswith("demo duty directory: version ")
    assert first[0].endswith(", 815 items, 212 departments")
    assert again[0].startswith("duty directory already there")
    assert len(directory_store.list_versions(session=db)) == 1


def test_the_sample_directory_is_never_seeded_in_production(app: Flask, db: Session) -> None:
    import dataclasses

    production = dataclasses.replace(app.config["HOTLINE_SETTINGS"], environment="production")

    said = list(seed_demo_directory(app.extensions["hotline.engine"], production))

    assert "not imported" in said[0]
    assert directory_store.list_versions(session=db) == []
