"""The forms of the order pages and the review queues (each carries the CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, InputRequired, Length, Optional

from tickets.models import ClosedHow
from webapp.orders.display import CLOSED_HOW_LABELS

MAX_REASON = 2000


def _reason(label: str) -> TextAreaField:
    return TextAreaField(label, validators=[InputRequired(), Length(max=MAX_REASON)])


class MoveForm(FlaskForm):
    """Remind, supervise, reopen: a reason. ``seen_version`` is the order's row version
    the person was looking at (a move on an order changed since is refused)."""

    reason = _reason("Why")
    seen_version = HiddenField(validators=[Optional()])


class CloseForm(MoveForm):
    how = SelectField(
        "How",
        choices=[
            SelectChoice(how.value, CLOSED_HOW_LABELS[how])
            for how in (ClosedHow.AFTER_CALLBACK, ClosedHow.EXPLAINED)
        ],
        validators=[InputRequired()],
    )


class ExtensionDecisionForm(FlaskForm):
    decision = StringField(validators=[InputRequired(), AnyOf(["approve", "refuse"])])
    reason = _reason("Why")
    back = HiddenField(validators=[Optional()])  # "order": back to the order page


class UpholdForm(FlaskForm):
    target = StringField("Re-dispatch to", validators=[InputRequired(), Length(max=100)])
    reason = _reason("Why it is not theirs")


class RejectForm(FlaskForm):
    reason = _reason("Why it is theirs after all")


class ConferenceForm(FlaskForm):
    """The multi-party call: the citizen, and departments by code: ticked (the form's
    ``department`` checkboxes, read as a list by the view) or typed."""

    other_departments = StringField(
        "Other departments (codes)", validators=[Optional(), Length(max=400)]
    )
    with_citizen = BooleanField("Dial the citizen too")


def form_problem(form: FlaskForm) -> str:
    """What to fix, in one sentence, for a form that did not validate."""
    problems = []
    for name, errors in form.errors.items():
        if not errors:
            continue
        if name == "csrf_token":
            return "The form expired; please send it again."
        label = getattr(form, name).label.text
        message = str(errors[0])
        if message == "This field is required.":
            message = "required"
        problems.append(f"{label}: {message}")
    return "Check the form: " + "; ".join(problems) + "."
