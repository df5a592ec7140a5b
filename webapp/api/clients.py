"""The systems that call the API (``ApiClient`` rows) and their bearer tokens.

A token is 32 random bytes, URL-safe, shown once when the client is added; the store keeps
only its SHA-256, so a copy of the database opens nothing. A department's client reads and
acts on that department's orders only; a client without a department (the provincial
platform) reads every order. Clients are deactivated, never deleted. Functions take the
session as a keyword and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tickets import directory as directory_store
from tickets.db import utcnow
from tickets.models import ApiClient

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
USE_RECORDED_EVERY = timedelta(minutes=1)


class ApiClientError(ValueError):
    """A client that cannot be added or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class ApiCaller:
    """The client behind a request, as the views see it: a snapshot, not a row."""

    id: int
    name: str
    department_code: str | None

    @property
    def actor(self) -> str:
        """Who acts, in the orders' history."""
        return f"api:{self.name}"

    @property
    def is_department(self) -> bool:
        return self.department_code is not None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_client(name: str, *, session: Session) -> ApiClient | None:
    return session.scalar(select(ApiClient).where(ApiClient.name == name))


def list_clients(*, session: Session) -> list[ApiClient]:
    return list(session.scalars(select(ApiClient).order_by(ApiClient.name)))


def add_client(
    name: str, *, department_code: str | None, actor: str, session: Session
) -> tuple[ApiClient, str]:
    """A new client and its token (the only time the token exists outside the caller)."""
    if not NAME.fullmatch(name):
        raise ApiClientError(
            "a name is 2 to 63 characters: lowercase letters, digits, '.', '_' or '-'"
            " (e.g. cgq-housing-system)"
        )
    if find_client(name, session=session) is not None:
        raise ApiClientError(f"{name!r} is already taken")
    if department_code is not None:
        _check_department(department_code, session=session)
    token = secrets.token_urlsafe(32)
    client = ApiClient(
        name=name,
        department_code=department_code,
        token_sha256=token_digest(token),
        is_active=True,
        created_by=actor,
    )
    session.add(client)
    session.flush()
    return client, token


def _check_department(code: str, *, session: Session) -> None:
    """A department of the current directory (when there is one: codes outlive versions)."""
    version = directory_store.find_current_version(session=session)
    if version is None:
        return
    if directory_store.find_department(version, code, session=session) is None:
        raise ApiClientError(f"the current duty directory has no department {code!r}")


def deactivate_client(client: ApiClient) -> None:
    client.is_active = False


def authenticate(token: str, *, session: Session) -> ApiClient | None:
    """The client holding ``token`` (active or not), or None."""
    if not token:
        return None
    return session.scalar(select(ApiClient).where(ApiClient.token_sha256 == token_digest(token)))


def record_use(client: ApiClient, *, session: Session, now: datetime | None = None) -> bool:
    """Note when the client was last seen, at most once a minute (so that most requests
    write nothing); the ``WHERE`` keeps two nodes from writing it twice. True if written."""
    now = now or utcnow()
    last = client.last_used_at
    if last is not None and now - last < USE_RECORDED_EVERY:
        return False
    result = session.execute(
        update(ApiClient)
        .where(
            ApiClient.id == client.id,
            or_(
                ApiClient.last_used_at.is_(None),
                ApiClient.last_used_at <= now - USE_RECORDED_EVERY,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
