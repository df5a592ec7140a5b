"""A fresh, migrated database per server: SQLite file copies or PostgreSQL databases."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .tools import ROOT, HarnessError, Tools, clean_env

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _migrate(tools: Tools, database_url: str) -> None:
    done = subprocess.run(
        [tools.hotline, "migrate"],
        cwd=ROOT,
        env=clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise HarnessError(f"hotline migrate failed on {database_url}:\n{done.stderr[-2000:]}")


class SqliteDatabases:
    """One migrated template file; each server gets a copy of it."""

    backend = "sqlite"

    def __init__(self, tools: Tools, workdir: Path) -> None:
        self._dir = workdir / "sqlite"
        self._dir.mkdir()
        template = self._dir / "template.db"
        _migrate(tools, f"sqlite:///{template}")
        self._template = template

    def describe(self) -> str:
        return f"SQLite file per server (WAL, synchronous=NORMAL) under {self._dir}"

    def fresh(self, name: str) -> str:
        target = self._dir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self._template}{suffix}")
            if source.exists():
                shutil.copyfile(source, f"{target}{suffix}")
        return f"sqlite:///{target}"

    def count(self, url: str, kind: str) -> int:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            (count,) = db.execute("SELECT count(*) FROM call_events WHERE kind = ?", (kind,))
            return int(count[0])

    def backend_pids(self, url: str) -> list[int]:
        return []

    def close(self) -> None:
        pass


class PostgresDatabases:
    """``CREATE DATABASE bench_...`` per server from one migrated template; all dropped."""

    backend = "postgres"

    def __init__(self, tools: Tools, admin_url: str) -> None:
        try:
            import psycopg
        except ImportError as error:
            raise HarnessError("PostgreSQL needs psycopg: pip install -e '.[postgres]'") from error
        self._psycopg = psycopg
        self._admin_url = admin_url
        self._prefix = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._created: list[str] = []
        try:
            with self._admin() as db:
                self.settings = {
                    name: db.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in ("server_version", "fsync", "synchronous_commit")
                }
        except psycopg.OperationalError as error:
            raise HarnessError(f"PostgreSQL at {admin_url} is unreachable: {error}") from error
        try:
            self._template = self._create(f"{self._prefix}_template")
            _migrate(tools, self.url_for(self._template))
        except BaseException:
            self.close()
            raise

    def _admin(self) -> Any:
        return self._psycopg.connect(_conninfo(self._admin_url), autocommit=True)

    def _create(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with self._admin() as db:
            db.execute(sql)
        self._created.append(name)
        return name

    def url_for(self, database: str) -> str:
        parts = urlsplit(self._admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def describe(self) -> str:
        s = self.settings
        return (
            f"PostgreSQL {s['server_version']} at {urlsplit(self._admin_url).netloc} "
            f"(fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}), "
            f"a database per server: {self._prefix}_*"
        )

    def fresh(self, name: str) -> str:
        return self.url_for(self._create(f"{self._prefix}_{name}", self._template))

    def count(self, url: str, kind: str) -> int:
        with self._psycopg.connect(_conninfo(url)) as db:
            row = db.execute("SELECT count(*) FROM call_events WHERE kind = %s", (kind,)).fetchone()
            return int(row[0])  # type: ignore[index]

    def backend_pids(self, url: str) -> list[int]:
        """The server processes serving ``url``'s database (their title names it)."""
        needle = f" {urlsplit(url).path.lstrip('/')} ".encode()
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    title = Path(entry.path, "cmdline").read_bytes()
                    if title.startswith(b"postgres: ") and needle in title:
                        pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        with self._admin() as db:
            for name in reversed(self._created):
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


def _conninfo(url: str) -> str:
    """A libpq URL from an SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


Databases = SqliteDatabases | PostgresDatabases


@contextlib.contextmanager
def databases_for(
    backends: list[str], tools: Tools, workdir: Path, postgres_url: str | None
) -> Iterator[dict[str, Databases]]:
    opened: dict[str, Databases] = {}
    try:
        if "sqlite" in backends:
            opened["sqlite"] = SqliteDatabases(tools, workdir)
        if "postgres" in backends and postgres_url:
            opened["postgres"] = PostgresDatabases(tools, postgres_url)
        yield opened
    finally:
        for databases in opened.values():
            databases.close()
