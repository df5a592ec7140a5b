"""Keyset pagination: a page ends with a cursor naming its last row, and the next page
starts after it, so rows added or changed meanwhile neither repeat nor go missing from the
rest of the listing (unlike page numbers). Work orders are listed by (``updated_at``,
``id``), so a client that synchronises sees an order again after it changed; directory
rows by code within one directory version.

Clients treat a cursor as opaque, but its form is plain and documented as a ``pattern``
(``<microseconds since 1970>-<row id>``, ``<version>:<code>``): any string of that form is
a position the API can start after, and any other is refused, exactly as the document
says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

ORDER_CURSOR = r"^[0-9]{1,20}-[0-9]{1,18}$"
DIRECTORY_CURSOR = r"^[0-9]{1,18}:[^\x00-\x1f\x7f]{1,40}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


class OrderPosition(NamedTuple):
    updated_at: datetime
    id: int


class DirectoryPosition(NamedTuple):
    version: int
    code: str


def order_cursor(position: OrderPosition) -> str:
    micros = (position.updated_at - EPOCH) // timedelta(microseconds=1)
    return f"{max(micros, 0)}-{position.id}"


def read_order_cursor(cursor: str) -> OrderPosition:
    """The position of a cursor matching ``ORDER_CURSOR`` (a time past the calendar's end
    is its end)."""
    micros, _, row_id = cursor.partition("-")
    try:
        at = EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        at = LATEST
    return OrderPosition(at, int(row_id))


def directory_cursor(position: DirectoryPosition) -> str:
    return f"{position.version}:{position.code}"


def read_directory_cursor(cursor: str) -> DirectoryPosition:
    """The position of a cursor matching ``DIRECTORY_CURSOR``."""
    version, _, code = cursor.partition(":")
    return DirectoryPosition(int(version), code)
