"""``/api/v1/directory``: the duty directory (职责清单) in force, read through
``tickets.directory``: its summary, its items and its departments, paged by code.

A version never changes once written, so a listing is paged within one version; a cursor
from a version that is no longer current is a 409 (start again). The departments' SMS
contact numbers (a liaison's mobile) are personal data and stay out of the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy.orm import Session
from werkzeug.exceptions import Conflict, NotFound

from tickets import directory as directory_store
from tickets.models import DirectoryDepartment, DirectoryItem, DirectoryVersion
from webapp.api.auth import require_client
from webapp.api.cursors import DirectoryPosition, directory_cursor
from webapp.api.schemas import (
    DirectoryDepartmentPageSchema,
    DirectoryDepartmentQuery,
    DirectoryItemPageSchema,
    DirectoryItemQuery,
    DirectorySummarySchema,
)
from webapp.auth import db_session

Row = TypeVar("Row", DirectoryItem, DirectoryDepartment)

bp = Blueprint(
    "duty-directory",
    __name__,
    url_prefix="/api/v1",
    description="The duty directory (接诉即办职责清单) in force: items and departments.",
)
bp.before_request(require_client)


def _current(session: Session) -> DirectoryVersion:
    version = directory_store.find_current_version(session=session)
    if version is None:
        raise NotFound("No duty directory has been imported yet.")
    return version


def _page(
    rows: Sequence[Row], version: DirectoryVersion, after: DirectoryPosition | None, limit: int
) -> dict[str, Any]:
    """``limit`` rows by code after the cursor's, and the cursor for the next page."""
    if after is not None and after.version != version.id:
        raise Conflict(
            f"The duty directory changed (version {after.version} is now {version.id}) since"
            " this listing began: start again without a cursor."
        )
    ordered = sorted(rows, key=lambda row: row.code)
    if after is not None:
        ordered = [row for row in ordered if row.code > after.code]
    page = ordered[:limit]
    more = len(ordered) > limit
    return {
        "version": version.id,
        "data": page,
        "next_cursor": directory_cursor(DirectoryPosition(version.id, page[-1].code))
        if more
        else None,
    }


@bp.route("/directory", methods=["GET"])
@bp.response(200, DirectorySummarySchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
def get_directory() -> dict[str, Any]:
    """The version in force: when it was made, what it holds by category and level."""
    session = db_session()
    version = _current(session)
    summary = directory_store.summarize(version, session=session)
    return {
        "version": version.id,
        "kind": version.kind.value,
        "created_at": version.created_at,
        "note": version.note,
        "category_count": version.category_count,
        "department_count": version.department_count,
        "item_count": version.item_count,
        "urgent_item_count": summary.urgent_items,
        "items_by_level": summary.items_by_level,
        "departments_by_level": summary.departments_by_level,
        "county_units": summary.county_units,
        "categories": [
            {"code": code, "name": name, "item_count": count}
            for code, name, count in summary.categories
        ],
    }


@bp.route("/directory/items", methods=["GET"])
@bp.arguments(DirectoryItemQuery, location="query", unknown=ma.RAISE, error_status_code=400)
@bp.response(200, DirectoryItemPageSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def list_items(query: dict[str, Any]) -> dict[str, Any]:
    """The responsibility items (职责事项), by code; search with `q`."""
    session = db_session()
    version = _current(session)
    items = directory_store.search_items(
        version,
        session=session,
        query=query.get("q", ""),
        category=query.get("category"),
        level=query.get("level"),
    )
    page = _page(items, version, query.get("cursor"), query["limit"])
    page["data"] = [_item(item) for item in page["data"]]
    return page


def _item(item: DirectoryItem) -> dict[str, Any]:
    return {
        "code": item.code,
        "category": item.category.code,
        "category_name": item.category.name,
        "title": item.title,
        "description": item.description,
        "keywords": item.keyword_list,
        "level": item.level,
        "role": item.role,
        "sla_days": item.sla_days,
        "is_urgent": item.is_urgent,
    }


@bp.route("/directory/departments", methods=["GET"])
@bp.arguments(DirectoryDepartmentQuery, location="query", unknown=ma.RAISE, error_status_code=400)
@bp.response(200, DirectoryDepartmentPageSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def list_departments(query: dict[str, Any]) -> dict[str, Any]:
    """The departments work orders go to, by code (codes are stable across versions)."""
    session = db_session()
    version = _current(session)
    departments = directory_store.search_departments(
        version,
        session=session,
        query=query.get("q", ""),
        level=query.get("level"),
        county=query.get("county"),
    )
    return _page(departments, version, query.get("cursor"), query["limit"])
