"""The staff pages' forms, and the labels people read for roles, languages and skills."""

from __future__ import annotations

from collections.abc import Mapping

from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    Field,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from tickets import directory as directory_store
from tickets.models import CallTakerState, Role
from tickets.staff import DEPARTMENT_CODE, LANGUAGES, MIN_PASSWORD_LENGTH, SKILLS, StaffDetails
from webapp.auth import db_session

ROLE_LABELS = {
    Role.CALL_TAKER: "Call-taker 接线员",
    Role.QUALITY_INSPECTOR: "Quality inspector 质检员",
    Role.REVIEWER: "Reviewer 审核员",
    Role.CALLBACK_AGENT: "Callback agent 回访员",
    Role.FLOOR_MANAGER: "Floor manager 现场管理",
    Role.KNOWLEDGE_EDITOR: "Knowledge editor 知识采集",
    Role.ADMINISTRATOR: "Administrator 系统管理员",
    Role.DEPARTMENT_LIAISON: "Department liaison 部门联络员",
}
LANGUAGE_LABELS = {"zh": "Mandarin 普通话", "bo": "Tibetan 藏语", "en": "English"}
SKILL_LABELS = {
    "consultation": "Policy consultation 政策咨询",
    "complaint": "Complaint or report 投诉举报",
    "help": "Help or suggestion 求助建议",
}
STATE_LABELS = {
    CallTakerState.OFFLINE: "Offline",
    CallTakerState.AVAILABLE: "Available",
    CallTakerState.RINGING: "Ringing",
    CallTakerState.ON_CALL: "On a call",
    CallTakerState.WRAP_UP: "Wrap-up",
    CallTakerState.AWAY: "Away",
}
AWAY_REASONS = {
    "break": "Short break",
    "meal": "Meal",
    "training": "Training",
    "meeting": "Meeting",
    "paperwork": "Work-order paperwork",
    "other": "Other (say what)",
}
LABELS = {  # for the templates
    "role_labels": ROLE_LABELS,
    "language_labels": LANGUAGE_LABELS,
    "skill_labels": SKILL_LABELS,
    "state_labels": STATE_LABELS,
}


def department_problem(code: str | None, *, session: Session) -> str | None:
    """Why ``code`` cannot be a liaison's department: not in the current duty directory
    (None: it is there, or no directory has been imported yet to check it against)."""
    code = (code or "").strip().upper()
    if not DEPARTMENT_CODE.match(code):
        return None  # empty, or not a code at all: ``StaffDetails.checked`` says so
    version = directory_store.find_current_version(session=session)
    if version is None or directory_store.find_department(version, code, session=session):
        return None
    return f"no department {code} in the current duty directory (version {version.id})"


def _choices(labels: Mapping[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


class CheckboxesField(SelectMultipleField):
    """Several choices as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _password_fields(label: str) -> tuple[PasswordField, PasswordField]:
    return (
        PasswordField(
            label,
            validators=[InputRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200)],
            description=f"At least {MIN_PASSWORD_LENGTH} characters.",
        ),
        PasswordField(
            "Repeat the password",
            validators=[InputRequired(), EqualTo("password", "The two passwords differ.")],
        ),
    )


class StaffForm(FlaskForm):
    """An account's details: what ``tickets.staff.StaffDetails`` holds."""

    display_name = StringField("Name", validators=[InputRequired(), Length(max=120)])
    roles = CheckboxesField("Roles", choices=_choices(ROLE_LABELS))
    languages = CheckboxesField(
        "Languages", choices=_choices({code: LANGUAGE_LABELS[code] for code in LANGUAGES})
    )
    skills = CheckboxesField(
        "Skills",
        choices=_choices({code: SKILL_LABELS[code] for code in SKILLS}),
        description="Calls of these kinds go to this call-taker first.",
    )
    phone_number = StringField(
        "Phone number",
        validators=[Optional(), Length(max=20)],
        description="E.164, e.g. +8613900000001: the phone that rings for a call.",
    )
    client_identity = StringField(
        "Browser softphone identity",
        validators=[Optional(), Length(max=120)],
        description="Instead of (or besides) a phone: the Twilio Client identity.",
    )
    is_active = BooleanField("Active (may log in)", default=True)
    department_code = StringField(
        "Department code 部门编码",
        validators=[Optional(), Length(max=40)],
        description="A department liaison's department: its code in the duty directory,"
        " e.g. D-CGQ-ZJJ. They see that department's work orders only.",
    )

    def validate_department_code(self, field: Field) -> None:
        problem = department_problem(field.data, session=db_session())
        if problem:
            raise ValidationError(problem)

    def details(self) -> StaffDetails:
        return StaffDetails(
            display_name=self.display_name.data or "",
            roles=frozenset(Role(value) for value in self.roles.data or ()),
            languages=tuple(self.languages.data or ()),
            skills=tuple(self.skills.data or ()),
            phone_number=self.phone_number.data or None,
            client_identity=self.client_identity.data or None,
            is_active=bool(self.is_active.data),
            department_code=self.department_code.data or None,
        )

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put the service's complaints on the fields they are about (a field the form
        already found wrong keeps its own message)."""
        for name, problem in errors.items():
            field = self._fields.get(name)
            if field is None:
                self.form_errors.append(problem)
            elif not field.errors:
                field.errors = [*field.errors, problem]


class NewStaffForm(StaffForm):
    username = StringField(
        "Username",
        validators=[InputRequired(), Length(min=2, max=64)],
        description="Lowercase letters, digits, '.', '_' or '-'; it cannot change later.",
    )
    password, confirm = _password_fields("Password")


class PasswordForm(FlaskForm):
    password, confirm = _password_fields("New password")


class StateForm(FlaskForm):
    """The console's buttons: available, away (with a reason) or offline."""

    state = SelectField(choices=_choices(STATE_LABELS), validators=[InputRequired()])
    reason = SelectField("Reason", choices=_choices(AWAY_REASONS), validate_choice=False)
    note = StringField("Note", validators=[Optional(), Length(max=100)])

    def away_reason(self) -> str:
        """The reason stored with ``away``: the choice, and the note when there is one."""
        reason = self.reason.data if self.reason.data in AWAY_REASONS else "other"
        note = (self.note.data or "").strip()
        return f"{reason}: {note}" if note else reason
