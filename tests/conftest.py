"""Shared fixtures: a real database (SQLite, or PostgreSQL when DATABASE_URL says so),
the app built on it, and a way to post webhooks signed the way Twilio signs them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import Engine, delete, text
from sqlalchemy.orm import Session, sessionmaker

from ivr.gateway import ConsoleGateway
from ivr.simulator import CallSimulator, make_simulator
from tests.support.webhooks import TwilioSender
from tickets.db import Base, make_engine
from webapp import create_app
from webapp.cli import alembic_config
from webapp.settings import Settings, load_settings

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_BASE_URL = "https://hotline.example.org"
HOTLINE_NUMBER = "+868916312345"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'hotline-test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The schema comes from the migrations, as in production."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    command.upgrade(alembic_config(database_url), "head")
    yield engine
    command.downgrade(alembic_config(database_url), "base")
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "engine" in request.fixturenames:
        engine: Engine = request.getfixturevalue("engine")
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(delete(table))


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session for reading what the app wrote."""
    with Session(engine) as session:
        yield session


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions of their own, as a worker or a second web process opens them."""
    return sessionmaker(engine, expire_on_commit=False)


def make_settings(database_url: str, **overrides: str) -> Settings:
    env = {
        "HOTLINE_ENV": "test",
        "DATABASE_URL": database_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "HOTLINE_NUMBER": HOTLINE_NUMBER,
        "RECORDINGS_DIR": "",
        "LOG_LEVEL": "warning",
        "JOURNAL_DIR": tempfile.mkdtemp(prefix="hotline-journal-"),
        **overrides,
    }
    return load_settings(env)


@pytest.fixture
def settings(database_url: str, engine: Engine) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def gateway() -> ConsoleGateway:
    return ConsoleGateway()


@pytest.fixture
def app(settings: Settings, gateway: ConsoleGateway) -> Iterator[Flask]:
    app = create_app(settings, gateway=gateway)
    app.config["TESTING"] = True
    yield app
    app.extensions["hotline.engine"].dispose()


@pytest.fixture
def twilio(app: Flask) -> TwilioSender:
    return TwilioSender(app.test_client(), AUTH_TOKEN, PUBLIC_BASE_URL)


@pytest.fixture
def simulator(app: Flask) -> CallSimulator:
    return make_simulator(auth_token=AUTH_TOKEN, public_base_url=PUBLIC_BASE_URL, app=app)


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder
