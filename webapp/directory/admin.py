"""The directory pages: the current version and its history, the upload of a new version,
browsing and editing items and departments. Administrators and knowledge editors only,
on every route; every form carries a CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from tickets import directory as directory_store
from tickets.directory_import import CATEGORIES, DEPARTMENTS, ITEMS, DirectoryInvalid
from tickets.models import DirectoryLevel, DirectoryVersion, Role
from webapp.auth import db_session, error_pages, roles_required
from webapp.directory.forms import LEVEL_LABELS, DepartmentForm, ItemForm, UploadForm

bp = error_pages(Blueprint("directory", __name__, url_prefix="/admin/directory"))
bp.context_processor(lambda: {"level_labels": LEVEL_LABELS})
editors_only = roles_required(Role.ADMINISTRATOR, Role.KNOWLEDGE_EDITOR)
MAX_ROWS = 200  # rows of a list page
MAX_PROBLEMS = 200  # line errors shown after an upload


def _level() -> DirectoryLevel | None:
    try:
        return DirectoryLevel(request.args.get("level", ""))
    except ValueError:
        return None


def _version_or_404(version_id: int | None) -> DirectoryVersion | None:
    """The version asked for (``?version=``), else the current one (None: none yet)."""
    db = db_session()
    if version_id is None:
        return directory_store.find_current_version(session=db)
    version = db.get(DirectoryVersion, version_id)
    if version is None:
        abort(404)
    return version


@bp.get("")
@editors_only
def index() -> ResponseReturnValue:
    db = db_session()
    current = directory_store.find_current_version(session=db)
    return render_template(
        "directory/index.html",
        summary=directory_store.summarize(current, session=db) if current else None,
        versions=directory_store.list_versions(session=db),
    )


@bp.get("/versions/<int:version_id>")
@editors_only
def show_version(version_id: int) -> ResponseReturnValue:
    db = db_session()
    version = _version_or_404(version_id)
    assert version is not None
    return render_template(
        "directory/version.html",
        summary=directory_store.summarize(version, session=db),
        changes=directory_store.version_changes(version, session=db),
    )


@bp.route("/import", methods=["GET", "POST"])
@editors_only
def upload() -> ResponseReturnValue:
    form = UploadForm()
    problems: list[str] = []
    more = 0
    if form.validate_on_submit():
        db = db_session()
        uploads = {CATEGORIES: form.categories, DEPARTMENTS: form.departments, ITEMS: form.items}
        try:
            version = directory_store.import_directory(
                {name: field.data.read() for name, field in uploads.items()},
                session=db,
                actor=current_user.actor,
                note=form.note.data or "",
                file_names={name: field.data.filename or name for name, field in uploads.items()},
            )
        except DirectoryInvalid as error:
            db.rollback()
            problems = [str(problem) for problem in error.problems[:MAX_PROBLEMS]]
            more = max(0, len(error.problems) - MAX_PROBLEMS)
        except directory_store.DirectoryChanged as error:
            db.rollback()
            form.form_errors.append(str(error))
        else:
            db.commit()
            flash(
                f"Imported directory version {version.id}: {version.item_count} items,"
                f" {version.department_count} departments. It is the current one now.",
                "success",
            )
            return redirect(url_for("directory.show_version", version_id=version.id))
    status = 400 if request.method == "POST" else 200
    return render_template("directory/upload.html", form=form, problems=problems, more=more), status


@bp.get("/items")
@editors_only
def list_items() -> ResponseReturnValue:
    db = db_session()
    version = _version_or_404(request.args.get("version", type=int))
    if version is None:
        return redirect(url_for("directory.index"))
    query, category = request.args.get("q", ""), request.args.get("category") or None
    items = directory_store.search_items(
        version, session=db, query=query, category=category, level=_level()
    )
    return render_template(
        "directory/items.html",
        version=version,
        items=items[:MAX_ROWS],
        total=len(items),
        categories=directory_store.list_categories(version, session=db),
        query=query,
        category=category,
        level=_level(),
    )


@bp.route("/items/<code>", methods=["GET", "POST"])
@editors_only
def edit_item(code: str) -> ResponseReturnValue:
    db = db_session()
    version = _version_or_404(None)
    item = directory_store.find_item(version, code, session=db) if version else None
    if version is None or item is None:
        abort(404)
    if request.method == "GET":
        values = directory_store.item_values(item)
        form = ItemForm(
            formdata=None,
            data={**values, "urgent": item.is_urgent, "based_on": str(version.id)},
        )
    else:
        form = ItemForm()
        form.code = code
        saved = _submit_edit(form, directory_store.edit_item, code, "item")
        if saved is not None:
            return saved
    return render_template(
        "directory/item_edit.html",
        item=item,
        version=version,
        form=form,
        changes=directory_store.changes_of("item", code, session=db),
    ), (400 if request.method == "POST" else 200)


@bp.get("/departments")
@editors_only
def list_departments() -> ResponseReturnValue:
    db = db_session()
    version = _version_or_404(request.args.get("version", type=int))
    if version is None:
        return redirect(url_for("directory.index"))
    query, county = request.args.get("q", ""), request.args.get("county") or None
    departments = directory_store.search_departments(
        version, session=db, query=query, level=_level(), county=county
    )
    return render_template(
        "directory/departments.html",
        version=version,
        departments=departments[:MAX_ROWS],
        total=len(departments),
        county_units=directory_store.summarize(version, session=db).county_units,
        query=query,
        county=county,
        level=_level(),
    )


@bp.route("/departments/<code>", methods=["GET", "POST"])
@editors_only
def edit_department(code: str) -> ResponseReturnValue:
    db = db_session()
    version = _version_or_404(None)
    department = directory_store.find_department(version, code, session=db) if version else None
    if version is None or department is None:
        abort(404)
    if request.method == "GET":
        values = directory_store.department_values(department)
        form = DepartmentForm(formdata=None, data={**values, "based_on": str(version.id)})
    else:
        form = DepartmentForm()
        form.code = code
        saved = _submit_edit(form, directory_store.edit_department, code, "department")
        if saved is not None:
            return saved
    return render_template(
        "directory/department_edit.html",
        department=department,
        version=version,
        form=form,
        changes=directory_store.changes_of("department", code, session=db),
    ), (400 if request.method == "POST" else 200)


def _submit_edit(
    form: ItemForm | DepartmentForm, edit: Callable[..., Any], code: str, what: str
) -> ResponseReturnValue | None:
    """Save an edited item or department as a new version; None: the form shows why not."""
    if not form.validate():
        return None
    db = db_session()
    try:
        new = edit(
            code,
            form.values(),
            based_on=_based_on(form),
            session=db,
            actor=current_user.actor,
            note=form.note.data or "",
        )
    except DirectoryInvalid as error:
        db.rollback()
        form.show_problems(error.problems)
    except directory_store.DirectoryChanged as error:
        db.rollback()
        form.form_errors.append(str(error))
    else:
        return _saved(new, f"{what} {code}")
    return None


def _based_on(form: ItemForm | DepartmentForm) -> int:
    value = form.based_on.data or ""
    return int(value) if value.isdigit() else -1


def _saved(version: DirectoryVersion | None, what: str) -> ResponseReturnValue:
    if version is None:
        flash(f"Nothing changed: {what} is as it was.", "info")
        return redirect(request.path)
    db_session().commit()
    flash(f"Saved {what}: directory version {version.id} is the current one now.", "success")
    return redirect(url_for("directory.show_version", version_id=version.id))
