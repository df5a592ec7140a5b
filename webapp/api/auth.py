"""Bearer tokens: every API route but the OpenAPI document needs
``Authorization: Bearer <token>`` of an active client; anything else is a 401 with
``WWW-Authenticate: Bearer`` (RFC 6750). The client is kept in ``g`` for the request."""

from __future__ import annotations

import logging

from flask import g
from flask import request as flask_request
from flask.typing import ResponseReturnValue

from webapp.api import clients
from webapp.api.clients import ApiCaller
from webapp.api.errors import error_response
from webapp.auth import db_session

log = logging.getLogger(__name__)
REALM = "12345 hotline API"
MAX_TOKEN_LENGTH = 200


def require_client() -> ResponseReturnValue | None:
    """The blueprints' ``before_request``: None lets the request through."""
    header = flask_request.headers.get("Authorization", "")
    if not header.strip():
        return _unauthorized("Send the API token as 'Authorization: Bearer <token>'.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return _unauthorized("The Authorization header must be 'Bearer <token>'.", invalid=True)
    session = db_session()
    client = clients.authenticate(token, session=session)
    if client is None:
        log.warning("API request with an unknown token to %s", flask_request.path)
        return _unauthorized("The token is not valid.", invalid=True)
    if not client.is_active:
        log.warning("API request from deactivated client %s", client.name)
        return _unauthorized("This API client is deactivated.", invalid=True)
    if clients.record_use(client, session=session):
        session.commit()
    g.api_caller = ApiCaller(client.id, client.name, client.department_code)
    return None


def current_caller() -> ApiCaller:
    caller: ApiCaller = g.api_caller
    return caller


def _unauthorized(message: str, *, invalid: bool = False) -> ResponseReturnValue:
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += ', error="invalid_token"'
    return error_response(401, message, headers={"WWW-Authenticate": challenge})
