"""Every answer under ``/api/`` that is not a success is JSON: ``{"error": "..."}`` with
the status that says what went wrong (400 a bad parameter, 401 no or a bad token, 404,
405, 409 a refused move ...), and ``errors`` per parameter when the request did not
validate. Routing's 404 and 405 have no blueprint, so the one handler is the app's and
decides by the path; any other path keeps Flask's own error pages."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

API_PATH = "/api/"
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ErrorSchema(ma.Schema):
    """What every error answer holds (documentation only: ``error_response`` writes it)."""

    error = ma.fields.String(
        required=True, metadata={"description": "What went wrong, in a sentence for a person."}
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={"description": "Per request parameter or body field: what is wrong with it."},
    )


def is_api_request() -> bool:
    return request.path.startswith(API_PATH) or request.path == API_PATH.rstrip("/")


def error_response(
    status: int,
    message: str,
    *,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def http_error(error: HTTPException) -> ResponseReturnValue:
    """An ``HTTPException`` raised anywhere: JSON under ``/api/``, else Flask's page."""
    if not is_api_request():
        return error  # Flask renders it as it would without this handler
    status = error.code or 500
    headers = {name: value for name, value in error.get_headers() if name in KEPT_HEADERS}
    data = getattr(error, "data", None) or {}  # webargs' validation errors
    if "messages" in data:
        errors = _flat(data["messages"])
        return error_response(status, _invalid_sentence(errors), errors=errors, headers=headers)
    if "message" in data:
        return error_response(status, str(data["message"]), headers=headers)
    return error_response(status, _sentence(error), headers=headers)


def _flat(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs' ``{location: {field: [...]}}`` as ``{field: [...]}`` (one location a
    request); a message for a whole location (an unreadable JSON body) as ``body``."""
    flat: dict[str, Any] = {}
    for location, found in messages.items():
        if isinstance(found, dict):
            for field, problems in found.items():
                key = "body" if field == "_schema" else field
                flat[key] = problems
        else:
            flat["body" if location in ("json", "form") else location] = found
    return flat


def _invalid_sentence(errors: dict[str, Any]) -> str:
    parts = []
    for field, problems in errors.items():
        text = "; ".join(_texts(problems))
        parts.append(f"{field}: {text}" if text else field)
    return "Invalid request: " + "; ".join(parts) + "."


def _texts(problems: Any) -> list[str]:
    if isinstance(problems, str):
        return [problems.rstrip(".")]
    if isinstance(problems, list):
        return [text for problem in problems for text in _texts(problem)]
    if isinstance(problems, dict):
        return [f"{key}: {'; '.join(_texts(value))}" for key, value in problems.items()]
    return [str(problems)]


def _sentence(error: HTTPException) -> str:
    if error.description and error.description != type(error).description:
        return error.description  # raised with a message of its own
    if isinstance(error, NotFound):
        return f"Nothing is at {request.path}."
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or []))
        return f"{request.method} is not allowed on {request.path} (allowed: {allowed})."
    if (error.code or 500) >= 500:
        return "The server failed to answer this request; the failure has been logged."
    return error.description or error.name
