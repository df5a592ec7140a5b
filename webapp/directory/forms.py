"""The directory pages' forms. Field names are the CSV's column names, so the problems of
``tickets.directory_import`` land on the fields they are about."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from tickets.directory_import import MAX_SLA_DAYS, Problem
from tickets.models import DirectoryLevel

LEVEL_LABELS = {
    DirectoryLevel.CITY: "City 市",
    DirectoryLevel.COUNTY: "County/district 县区",
    DirectoryLevel.TOWNSHIP: "Township/street 乡镇/街道",
}
LEVEL_CHOICES = [SelectChoice(level.value, label) for level, label in LEVEL_LABELS.items()]


class UploadForm(FlaskForm):
    categories = FileField("categories.csv", validators=[FileRequired("Choose the file.")])
    departments = FileField("departments.csv", validators=[FileRequired("Choose the file.")])
    items = FileField("items.csv", validators=[FileRequired("Choose the file.")])
    note = StringField(
        "Note",
        validators=[Optional(), Length(max=500)],
        description="Why this import, e.g. the 2027 list from the city government office.",
    )


class _EditForm(FlaskForm):
    based_on = HiddenField()
    note = StringField(
        "Why the change",
        validators=[Optional(), Length(max=500)],
        description="Kept with the new version.",
    )

    def values(self) -> dict[str, str]:
        """The CSV's columns as typed (the service checks them)."""
        skip = {"based_on", "note", "csrf_token"}
        return {name: str(f.data or "") for name, f in self._fields.items() if name not in skip}

    def show_problems(self, problems: list[Problem]) -> None:
        for problem in problems:
            field = self._fields.get(problem.field or "")
            if field is not None and problem.line is None and problem.code == self.code:
                field.errors = [*field.errors, problem.message]
            else:
                self.form_errors.append(str(problem))

    code = ""


class ItemForm(_EditForm):
    title = StringField("Title", validators=[InputRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[InputRequired(), Length(max=2000)])
    keywords = StringField(
        "Keywords",
        validators=[InputRequired()],
        description="Separated by |, including the words callers use.",
    )
    level = SelectField("Level", choices=LEVEL_CHOICES)
    role = StringField(
        "Role",
        validators=[InputRequired(), Length(max=50)],
        description="The department role that handles it, e.g. 住建局, 街道办/乡镇政府.",
    )
    sla_days = StringField(
        "Time limit (working days)",
        validators=[InputRequired()],
        description=f"1 to {MAX_SLA_DAYS}; urgent items 1 (handled within hours).",
    )
    urgent = BooleanField("Urgent")

    def values(self) -> dict[str, str]:
        values = super().values()
        values["urgent"] = "yes" if self.urgent.data else "no"
        return values


class DepartmentForm(_EditForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=200)])
    level = SelectField("Level", choices=LEVEL_CHOICES)
    county = StringField(
        "County unit",
        validators=[Optional(), Length(max=50)],
        description="Empty for a city department, e.g. 城关区 otherwise.",
    )
    role = StringField("Role", validators=[InputRequired(), Length(max=50)])
    phone = StringField(
        "Office phone", validators=[InputRequired()], description="E.164, e.g. +868916533936."
    )
    sms_contact = StringField(
        "SMS contact",
        validators=[InputRequired()],
        description="The liaison's mobile for SMS reminders, E.164, e.g. +8613900000001.",
    )
