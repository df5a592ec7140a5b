"""How the call simulator reaches the hotline app: in process (WSGI) or over HTTP.

Both transports send one form-encoded POST and hand back ``(status, content_type, body)``.
Neither follows HTTP redirects or keeps cookies: Twilio's webhooks do not need them here,
and a 3xx from a voice route is a bug the simulator should show, not hide.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlencode, urlsplit

from werkzeug.test import Client

Form = Sequence[tuple[str, str]]

_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class TransportResponse(NamedTuple):
    status: int
    content_type: str
    body: str


class TransportError(Exception):
    """The request never got an HTTP answer (connection refused, timeout, ...)."""


class Transport(Protocol):
    def post(
        self, path_and_query: str, form: Form, headers: Mapping[str, str]
    ) -> TransportResponse: ...


def encode_form(form: Form) -> str:
    """The ``application/x-www-form-urlencoded`` body Twilio would send."""
    return urlencode(list(form), encoding="utf-8")


class WsgiTransport:
    """Calls a WSGI app in process through werkzeug's test client.

    Exceptions raised by the app propagate (you want the traceback in a test).
    ``base_url`` sets the scheme and host the app sees in ``request.url``.
    """

    def __init__(self, app: Any, base_url: str = "http://localhost") -> None:
        self._client = Client(app, use_cookies=False)
        self._base_url = base_url

    def post(
        self, path_and_query: str, form: Form, headers: Mapping[str, str]
    ) -> TransportResponse:
        response = self._client.post(
            path_and_query,
            base_url=self._base_url,
            data=encode_form(form),
            content_type="application/x-www-form-urlencoded",
            headers=dict(headers),
        )
        try:
            return TransportResponse(
                response.status_code,
                response.headers.get("Content-Type", ""),
                response.get_data(as_text=True),
            )
        finally:
            response.close()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class HttpTransport:
    """POSTs to a running server with urllib (no proxy for loopback addresses)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if urlsplit(self.base_url).hostname in _LOOPBACK_HOSTS:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def post(
        self, path_and_query: str, form: Form, headers: Mapping[str, str]
    ) -> TransportResponse:
        request = urllib.request.Request(
            self.base_url + path_and_query,
            data=encode_form(form).encode("ascii"),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return _read(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return _read(error.code, error.headers, error.read())
        except (urllib.error.URLError, OSError) as error:
            raise TransportError(f"POST {self.base_url}{path_and_query}: {error}") from error


def _read(status: int, headers: Any, raw: bytes) -> TransportResponse:
    charset = headers.get_content_charset() or "utf-8"
    try:
        body = raw.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        body = raw.decode("utf-8", errors="replace")
    return TransportResponse(status, headers.get("Content-Type", ""), body)
