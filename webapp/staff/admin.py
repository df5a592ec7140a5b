"""The administrators' pages: the staff list, adding and editing an account, resetting a
password. Every route, GET and POST, is for the administrator role only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user

from tickets import staff as staff_store
from tickets.models import Role, Staff
from webapp.auth import StaffUser, db_session, error_pages, roles_required
from webapp.staff.forms import LABELS, NewStaffForm, PasswordForm, StaffForm

bp = error_pages(Blueprint("admin", __name__, url_prefix="/admin"))
bp.context_processor(lambda: LABELS)
admin_only = roles_required(Role.ADMINISTRATOR)
HISTORY_ROWS = 20
NOT_YOURSELF = "You cannot take away your own administrator role or deactivate yourself."


def _staff_or_404(staff_id: int) -> Staff:
    staff = db_session().get(Staff, staff_id)
    if staff is None:
        abort(404)
    return staff


def _status() -> int:
    """A form shown again after a POST did not pass: 400, with everything typed kept."""
    return 400 if request.method == "POST" else 200


@bp.get("/staff")
@admin_only
def list_staff() -> ResponseReturnValue:
    return render_template(
        "admin/staff_list.html", people=staff_store.list_staff(session=db_session())
    )


@bp.route("/staff/new", methods=["GET", "POST"])
@admin_only
def new_staff() -> ResponseReturnValue:
    form = NewStaffForm()
    if form.is_submitted():
        db = db_session()
        form.validate()
        username, password, details = (
            form.username.data or "",
            form.password.data or "",
            form.details(),
        )
        form.show_errors(staff_store.new_staff_problems(username, password, details, session=db))
        if not form.errors:
            staff = staff_store.create_staff(
                username, password, details, session=db, actor=current_user.actor
            )
            db.commit()
            flash(f"{staff.display_name} ({staff.username}) can log in now.", "success")
            return redirect(url_for("admin.list_staff"))
    return render_template("admin/staff_new.html", form=form), _status()


@bp.route("/staff/<int:staff_id>", methods=["GET", "POST"])
@admin_only
def edit_staff(staff_id: int) -> ResponseReturnValue:
    db = db_session()
    staff = _staff_or_404(staff_id)
    if request.method == "GET":
        form = StaffForm(formdata=None, data=_form_data(staff))
        return _edit_page(staff, form, PasswordForm(formdata=None), 200)
    form = StaffForm()
    form.validate()
    details = form.details()
    if staff.id == current_user.id and (
        Role.ADMINISTRATOR not in details.roles or not details.is_active
    ):
        form.show_errors({"roles": NOT_YOURSELF})
    form.show_errors(staff_store.update_problems(staff, details, session=db))
    if form.errors:
        return _edit_page(staff, form, PasswordForm(formdata=None), 400)
    staff_store.update_staff(staff, details, session=db, actor=current_user.actor)
    db.commit()
    flash(f"Saved {staff.display_name} ({staff.username}).", "success")
    return redirect(url_for("admin.list_staff"))


@bp.post("/staff/<int:staff_id>/password")
@admin_only
def reset_password(staff_id: int) -> ResponseReturnValue:
    db = db_session()
    staff = _staff_or_404(staff_id)
    password_form = PasswordForm()
    if password_form.validate_on_submit():
        staff_store.set_password(
            staff, password_form.password.data or "", session=db, actor=current_user.actor
        )
        db.commit()
        if staff.id == current_user.id:
            login_user(StaffUser.of(staff))  # keep this login: the old token is gone
        flash(f"New password set for {staff.username}; their open logins have ended.", "success")
        return redirect(url_for("admin.edit_staff", staff_id=staff.id))
    form = StaffForm(formdata=None, data=_form_data(staff))
    return _edit_page(staff, form, password_form, 400)


def _form_data(staff: Staff) -> dict[str, object]:
    details = staff_store.details_of(staff)
    return {
        "display_name": details.display_name,
        "roles": sorted(role.value for role in details.roles),
        "languages": list(details.languages),
        "skills": list(details.skills),
        "phone_number": details.phone_number or "",
        "client_identity": details.client_identity or "",
        "is_active": details.is_active,
        "department_code": details.department_code or "",
    }


def _edit_page(
    staff: Staff, form: StaffForm, password_form: PasswordForm, status: int
) -> ResponseReturnValue:
    db = db_session()
    return (
        render_template(
            "admin/staff_edit.html",
            staff=staff,
            form=form,
            password_form=password_form,
            account_history=staff_store.account_history(staff, session=db, limit=HISTORY_ROWS),
            state_history=staff_store.state_history(staff, session=db, limit=HISTORY_ROWS),
        ),
        status,
    )
