"""What the API reads and writes, as marshmallow schemas: flask-smorest validates the
query strings and bodies with them and apispec turns them into the OpenAPI document, so
the document and the checks cannot drift apart. Every constraint a parameter has is in
the document (``pattern``, ``enum``, ``minimum`` ...), and nothing else is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from tickets.models import DirectoryLevel, ObjectionReason, WorkOrderKind, WorkOrderState
from webapp.api.cursors import (
    DIRECTORY_CURSOR,
    ORDER_CURSOR,
    read_directory_cursor,
    read_order_cursor,
)

ORDER_NUMBER = r"^[0-9]{1,24}$"
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"  # one line, no control characters
CODE = r"^[A-Za-z0-9_-]{1,40}$"
# Something besides spaces, tabs, line breaks and the ideographic space (spelled out: what
# \s means differs between Python and the ECMA regular expressions of JSON Schema).
NOT_BLANK = r"[^ \t\n\r\f\v\u3000]"
MAX_PAGE = 200


class Pattern:
    """A string must match ``pattern`` as JSON Schema reads it (``regex`` is what apispec
    documents). Python's ``$`` also matches before a final newline, JSON Schema's does
    not: the check ends such a pattern with ``\\Z`` instead."""

    def __init__(self, pattern: str, message: str) -> None:
        self.regex = re.compile(pattern)
        self._check = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)
        self.message = message

    def __call__(self, value: str) -> str:
        if not self._check.search(value):
            raise ma.ValidationError(self.message)
        return value


def plain_text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=max_length),
            Pattern(PLAIN_TEXT, "Control characters (line breaks, tabs ...) are not allowed."),
        ],
        **kwargs,
    )


def written_text(max_length: int = 4000, *, required: bool, description: str) -> fields.String:
    """A free text a person wrote (line breaks allowed); a required one has something in it."""
    if not required:
        return fields.String(
            load_default="",
            validate=validate.Length(max=max_length),
            metadata={"description": description},
        )
    return fields.String(
        required=True,
        validate=[
            validate.Length(max=max_length),
            Pattern(NOT_BLANK, "Write something: it may not be blank."),
        ],
        metadata={"description": description},
    )


class Instant(fields.AwareDateTime):
    """An RFC 3339 date-time with its offset (``2026-11-24T10:00:00+08:00``, ``...Z``),
    as UTC. A time at the very edge of the calendar that UTC cannot hold is clamped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            value = value.upper()  # RFC 3339 allows a lowercase t and z
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            edge = datetime.min if moment.year == datetime.min.year else datetime.max
            return edge.replace(tzinfo=UTC)


# -- query strings ---------------------------------------------------------------------------


class PageQuery(ma.Schema):
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"How many rows a page holds (at most {MAX_PAGE})."},
    )


def cursor_field(pattern: str) -> fields.String:
    return fields.String(
        validate=Pattern(pattern, "Not a cursor of this listing: start again without one."),
        metadata={"description": "The `next_cursor` of the previous page, for the next one."},
    )


class WorkOrderQuery(PageQuery):
    state = fields.Enum(WorkOrderState, by_value=True, metadata={"description": "Only this state."})
    updated_since = Instant(
        metadata={
            "description": "Only orders changed at or after this time (RFC 3339, with its"
            " offset), e.g. the time of the previous synchronisation.",
        }
    )
    number = fields.String(
        validate=Pattern(ORDER_NUMBER, "A work-order number is digits only."),
        metadata={"description": "Only the order with this number."},
    )
    cursor = cursor_field(ORDER_CURSOR)

    @ma.post_load
    def read_cursor(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "cursor" in data:
            data["cursor"] = read_order_cursor(data["cursor"])
        return data


class DirectoryPageQuery(PageQuery):
    cursor = cursor_field(DIRECTORY_CURSOR)

    @ma.post_load
    def read_cursor(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "cursor" in data:
            data["cursor"] = read_directory_cursor(data["cursor"])
        return data


class DirectoryItemQuery(DirectoryPageQuery):
    q = plain_text(
        100, metadata={"description": "Text in the item's code, title or keywords (any case)."}
    )
    category = fields.String(
        validate=Pattern(CODE, "A category code is letters, digits, '_' or '-'."),
        metadata={"description": "Only the items of this category (its code, e.g. C01)."},
    )
    level = fields.Enum(DirectoryLevel, by_value=True, metadata={"description": "Only this level."})


class DirectoryDepartmentQuery(DirectoryPageQuery):
    q = plain_text(100, metadata={"description": "Text in the department's code, name or role."})
    level = fields.Enum(DirectoryLevel, by_value=True, metadata={"description": "Only this level."})
    county = plain_text(50, metadata={"description": "Only the departments of this county."})


# -- request bodies (a department's moves) ---------------------------------------------------


class AcceptBody(ma.Schema):
    note = written_text(required=False, description="Anything the department adds on signing off.")


class NoteBody(ma.Schema):
    note = written_text(required=True, description="What the department did or found.")


class AnswerBody(ma.Schema):
    outcome = written_text(required=True, description="The department's answer to the citizen.")


class ObjectionBody(ma.Schema):
    reason_code = fields.Enum(
        ObjectionReason, by_value=True, required=True, metadata={"description": "Why not ours."}
    )
    text = written_text(required=True, description="The objection, for the reviewer.")


# -- answers -----------------------------------------------------------------------------------


class WorkOrderSchema(ma.Schema):
    number = fields.String(required=True)
    kind = fields.Enum(WorkOrderKind, by_value=True, required=True)
    state = fields.Enum(WorkOrderState, by_value=True, required=True)
    is_urgent = fields.Boolean(required=True)
    summary = fields.String(required=True)
    caller_words = fields.String(required=True)
    district = fields.String(allow_none=True, required=True)
    street = fields.String(allow_none=True, required=True)
    is_confidential = fields.Boolean(required=True)
    caller_number = fields.String(
        allow_none=True,
        required=True,
        metadata={
            "description": "E.164; null when unknown, and for a department's system when the"
            " order is confidential (保密).",
        },
    )
    language = fields.String(allow_none=True, required=True)
    department_code = fields.String(allow_none=True, required=True)
    handling_department = fields.String(allow_none=True, required=True)
    item_code = fields.String(allow_none=True, required=True)
    item_title = fields.String(allow_none=True, required=True)
    dispatch_count = fields.Integer(required=True)
    reopen_count = fields.Integer(required=True)
    dispatched_at = fields.DateTime(format="iso", allow_none=True, required=True)
    accepted_at = fields.DateTime(format="iso", allow_none=True, required=True)
    contacted_at = fields.DateTime(format="iso", allow_none=True, required=True)
    answered_at = fields.DateTime(format="iso", allow_none=True, required=True)
    closed_at = fields.DateTime(format="iso", allow_none=True, required=True)
    closed_how = fields.String(allow_none=True, required=True)
    signoff_due_at = fields.DateTime(
        format="iso",
        allow_none=True,
        required=True,
        metadata={"description": "When the department must sign off (签收)."},
    )
    contact_due_at = fields.DateTime(
        format="iso",
        allow_none=True,
        required=True,
        metadata={"description": "When it must first contact the citizen (响应)."},
    )
    due_at = fields.DateTime(
        format="iso",
        allow_none=True,
        required=True,
        metadata={"description": "When it must be resolved (办结)."},
    )
    outcome = fields.String(required=True)
    is_supervised = fields.Boolean(required=True)
    created_at = fields.DateTime(format="iso", required=True)
    updated_at = fields.DateTime(format="iso", required=True)


class WorkOrderPageSchema(ma.Schema):
    data = fields.List(fields.Nested(WorkOrderSchema), required=True)
    next_cursor = fields.String(
        allow_none=True, required=True, metadata={"description": "null on the last page."}
    )


class HistorySchema(ma.Schema):
    at = fields.DateTime(format="iso", required=True)
    actor = fields.String(
        required=True, metadata={"description": "staff:<id>, system:<part> or api:<client>."}
    )
    actor_role = fields.String(required=True)
    action = fields.String(required=True)
    from_state = fields.String(allow_none=True, required=True)
    to_state = fields.String(required=True)
    reason = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), required=True)


class HistoryListSchema(ma.Schema):
    number = fields.String(required=True)
    data = fields.List(fields.Nested(HistorySchema), required=True)


class CategorySummarySchema(ma.Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    item_count = fields.Integer(required=True)


class DirectorySummarySchema(ma.Schema):
    version = fields.Integer(required=True)
    kind = fields.String(required=True)
    created_at = fields.DateTime(format="iso", required=True)
    note = fields.String(required=True)
    category_count = fields.Integer(required=True)
    department_count = fields.Integer(required=True)
    item_count = fields.Integer(required=True)
    urgent_item_count = fields.Integer(required=True)
    items_by_level = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    departments_by_level = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    county_units = fields.List(fields.String(), required=True)
    categories = fields.List(fields.Nested(CategorySummarySchema), required=True)


class DirectoryItemSchema(ma.Schema):
    code = fields.String(required=True)
    category = fields.String(required=True, metadata={"description": "The category's code."})
    category_name = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    keywords = fields.List(fields.String(), required=True)
    level = fields.Enum(DirectoryLevel, by_value=True, required=True)
    role = fields.String(
        required=True, metadata={"description": "The kind of department responsible."}
    )
    sla_days = fields.Integer(required=True, metadata={"description": "Working days to resolve."})
    is_urgent = fields.Boolean(required=True)


class DirectoryDepartmentSchema(ma.Schema):
    code = fields.String(required=True, metadata={"description": "Stable across versions."})
    name = fields.String(required=True)
    level = fields.Enum(DirectoryLevel, by_value=True, required=True)
    county = fields.String(allow_none=True, required=True)
    role = fields.String(required=True)
    phone_number = fields.String(required=True, metadata={"description": "The office line."})


class DirectoryItemPageSchema(ma.Schema):
    version = fields.Integer(required=True, metadata={"description": "The directory version."})
    data = fields.List(fields.Nested(DirectoryItemSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class DirectoryDepartmentPageSchema(ma.Schema):
    version = fields.Integer(required=True, metadata={"description": "The directory version."})
    data = fields.List(fields.Nested(DirectoryDepartmentSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
