"""ARCHITECTURE.md's import rules, read from the source with ``ast`` (nothing is imported).

- ``callflows`` and ``routing`` import nothing of the project but themselves, and nothing
  that does I/O or talks to the web, a database or Twilio;
- ``tickets`` imports ``routing``; ``ivr`` imports ``callflows``, ``routing``, ``tickets``;
- nothing imports ``webapp`` except ``webapp``, ``migrations/env.py`` and the tests;
- only ``ivr`` imports ``twilio``; tests reach twilio only through ``tests/support/``.

Every import counts: at module level, inside functions, under ``TYPE_CHECKING`` or ``try``,
relative imports, and ``importlib.import_module``/``__import__`` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("ivr", "callflows", "routing", "tickets", "webapp")
SKIPPED_DIRS = {".venv", "venv", ".git", "instance", "node_modules", "__pycache__", "build", "dist"}

# What each package may import of the project (itself always included).
ALLOWED = {
    "callflows": {"callflows"},
    "routing": {"routing"},
    "tickets": {"tickets", "routing"},
    "ivr": {"ivr", "callflows", "routing", "tickets"},
    "webapp": set(PROJECT),
}
# callflows and routing are pure: no web, no database, no Twilio, no I/O.
IMPURE = {
    "flask",
    "werkzeug",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg2",
    "sqlite3",
    "redis",
    "huey",
    "twilio",
    "requests",
    "httpx",
    "urllib3",
    "aiohttp",
    "os",
    "socket",
    "ssl",
    "subprocess",
    "urllib",
    "http",
    "shutil",
    "smtplib",
    "ftplib",
    "tempfile",
    "multiprocessing",
}
# Tooling that is not part of the application and measures it against a bare Twilio app
# (bench/bare_app.py is, on purpose, Flask + twilio without ivr/; the harness signs its
# webhooks with twilio's RequestValidator): not bound by the twilio rule. Only the modules
# that import twilio; they are still bound by the webapp rule.
TWILIO_EXEMPT_TOOLING = ("bench/bare_app.py", "bench/harness/deliveries.py")


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository, with "/"
    line: int
    module: str  # absolute dotted name

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def python_files(root: Path = ROOT) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in parts):
            continue
        if any(part.endswith(".egg-info") for part in parts):
            continue
        yield path


def package_of(relative: str) -> str:
    """The dotted package a file's relative imports are resolved against."""
    return ".".join(relative.split("/")[:-1])  # ivr/__init__.py and ivr/voice.py: ivr


def resolve(package: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = package.split(".") if package else []
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_in(source: str, relative: str) -> list[Import]:
    tree = ast.parse(source, filename=relative)
    package = package_of(relative)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(relative, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(package, node.level, node.module)
            found.append(Import(relative, node.lineno, base))
            if node.module is None:  # from . import x: x is a module of the package
                found.extend(
                    Import(relative, node.lineno, f"{base}.{alias.name}".lstrip("."))
                    for alias in node.names
                )
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(Import(relative, node.lineno, first.value))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def all_imports() -> list[Import]:
    found: list[Import] = []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        found.extend(imports_in(path.read_text(encoding="utf-8"), relative))
    return found


IMPORTS = all_imports()


def from_package(package: str) -> list[Import]:
    return [i for i in IMPORTS if i.path.startswith(f"{package}/")]


def listing(violations: list[Import]) -> str:
    return "\n".join(str(v) for v in violations)


# -- the reader itself ------------------------------------------------------------------

SAMPLE = """
import os.path
import twilio.rest as tw, json
from flask import Flask
from . import speech
from .steps import Say
from ..tickets import models
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from webapp.settings import Settings
try:
    import redis
except ImportError:
    pass
def later():
    from sqlalchemy import select
    import importlib
    importlib.import_module("requests.adapters")
    __import__("socket")
"""


def test_the_import_reader_sees_every_kind_of_import() -> None:
    modules = {i.module for i in imports_in(SAMPLE, "callflows/front_door.py")}

    assert modules >= {
        "os.path",
        "twilio.rest",
        "json",
        "flask",
        "callflows",
        "callflows.speech",
        "callflows.steps",
        "tickets",
        "webapp.settings",
        "redis",
        "sqlalchemy",
        "importlib",
        "requests.adapters",
        "socket",
    }


def test_relative_imports_in_a_package_init_resolve_to_the_package() -> None:
    modules = {i.module for i in imports_in("from .audio import bp", "ivr/__init__.py")}

    assert modules == {"ivr.audio"}


def test_the_scan_covers_every_package_and_the_tests() -> None:
    scanned = {path.relative_to(ROOT).as_posix() for path in python_files()}

    for package in (*PROJECT, "migrations", "tests"):
        assert any(path.startswith(f"{package}/") for path in scanned), package
    assert "migrations/env.py" in scanned
    assert "tests/test_architecture.py" in scanned
    assert not any(path.startswith(".venv/") for path in scanned)


# -- the rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_project_packages_it_may(package: str) -> None:
    violations = [
        i
        for i in from_package(package)
        if i.top in PROJECT and i.top not in ALLOWED[package] | {package}
    ]

    assert not violations, listing(violations)


def test_callflows_and_routing_do_not_import_each_other() -> None:
    violations = [i for i in from_package("callflows") if i.top == "routing"]
    violations += [i for i in from_package("routing") if i.top == "callflows"]

    assert not violations, listing(violations)


@pytest.mark.parametrize("package", ["callflows", "routing"])
def test_the_pure_packages_import_no_web_database_twilio_or_io_module(package: str) -> None:
    violations = [i for i in from_package(package) if i.top in IMPURE]

    assert not violations, listing(violations)


def test_nothing_imports_webapp_except_webapp_migrations_env_and_the_tests() -> None:
    violations = [
        i
        for i in IMPORTS
        if i.top == "webapp"
        and not i.path.startswith(("webapp/", "tests/"))
        and i.path != "migrations/env.py"
    ]

    assert not violations, listing(violations)


def test_migration_scripts_do_not_import_the_project() -> None:
    """A migration is frozen in time: it may not depend on today's models."""
    violations = [
        i for i in IMPORTS if i.path.startswith("migrations/versions/") and i.top in PROJECT
    ]

    assert not violations, listing(violations)


def test_only_ivr_imports_twilio() -> None:
    violations = [
        i
        for i in IMPORTS
        if i.top == "twilio"
        and not i.path.startswith(("ivr/", "tests/"))
        and not i.path.startswith(TWILIO_EXEMPT_TOOLING)
    ]

    assert not violations, listing(violations)


def test_tests_reach_twilio_only_through_tests_support() -> None:
    violations = [
        i
        for i in IMPORTS
        if i.top == "twilio"
        and i.path.startswith("tests/")
        and not i.path.startswith("tests/support/")
    ]

    assert not violations, listing(violations)
