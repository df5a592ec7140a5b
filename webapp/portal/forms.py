"""The portal's forms, one per action a liaison takes, and the labels a liaison reads.

Each form's fields have their own names (not ``note`` everywhere), so the forms can share
one page without two fields of the same id."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from tickets.lifecycle import Action
from tickets.models import ObjectionReason, WorkOrderState
from tickets.order_flow import MAX_EXTENSION_DAYS

MAX_TEXT = 2000

STATE_LABELS = {
    WorkOrderState.RECEIVED: "Received 已受理",
    WorkOrderState.DISPATCHED: "Dispatched, to sign off 待签收",
    WorkOrderState.ACCEPTED: "Accepted 已签收",
    WorkOrderState.IN_PROGRESS: "In progress 办理中",
    WorkOrderState.ANSWERED: "Answered 已反馈",
    WorkOrderState.CALLBACK: "Callback survey 回访中",
    WorkOrderState.CLOSED: "Closed 已办结",
    WorkOrderState.OBJECTED: "Objected, under review 退单审核中",
}
ACTION_LABELS = {
    "receive": "Received 受理",
    Action.DISPATCH: "Dispatched 派单",
    Action.CLOSE_ON_THE_SPOT: "Answered on the spot 直接答复",
    Action.ACCEPT: "Signed off 签收",
    Action.CONTACT: "Contacted the citizen 响应",
    Action.PROGRESS: "Progress 办理进展",
    Action.ANSWER: "Answered 反馈",
    Action.OBJECT: "Objected 退单",
    Action.UPHOLD_OBJECTION: "Objection upheld 退单通过",
    Action.REJECT_OBJECTION: "Objection rejected 退单驳回",
    Action.REQUEST_EXTENSION: "Extension requested 延期申请",
    Action.APPROVE_EXTENSION: "Extension approved 延期通过",
    Action.REFUSE_EXTENSION: "Extension refused 延期驳回",
    Action.REMIND: "Reminder 催办",
    Action.SUPERVISE: "Supervised 督办",
    Action.START_CALLBACK: "Callback survey 回访",
    Action.CLOSE: "Closed 办结",
    Action.REOPEN: "Reopened 重办",
}
OBJECTION_LABELS = {
    ObjectionReason.NOT_OUR_DUTY: "不属于本单位职责 Not our duty",
    ObjectionReason.WRONG_AREA: "不在本辖区 Not in our area",
    ObjectionReason.ALREADY_HANDLED: "已办理/重复诉求 Already handled or a repeat",
    ObjectionReason.NEEDS_OTHER_CHANNEL: (
        "应通过诉讼、仲裁等途径解决 For the courts, arbitration or another channel"
    ),
    ObjectionReason.INSUFFICIENT_INFORMATION: "信息不全，无法办理 Not enough information",
    ObjectionReason.OTHER: "其他 Other",
}


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _text(label: str, required: str | None, description: str = "") -> TextAreaField:
    """A text (a reason, a note): ``required`` is the message when it is left empty (or
    holds only spaces); None: optional."""
    validators = [DataRequired(required) if required else Optional(), Length(max=MAX_TEXT)]
    return TextAreaField(label, validators=validators, filters=[_stripped], description=description)


class AcceptForm(FlaskForm):
    """签收."""

    accept_note = _text("Note 备注", None, "Optional.")


class ContactForm(FlaskForm):
    """响应: the first contact with the citizen."""

    contact_note = _text(
        "First contact 首次联系情况",
        "Say how and when you reached the citizen.",
        "How and when you reached the citizen, and what was agreed.",
    )


class ProgressForm(FlaskForm):
    """办理: a progress note."""

    progress_note = _text("Progress 办理进展", "Write the progress note.")


class AnswerForm(FlaskForm):
    """反馈: the outcome."""

    outcome = _text(
        "Outcome 办理结果",
        "Write the outcome for the citizen.",
        "What was done; the citizen hears it in the callback survey.",
    )


class ExtensionForm(FlaskForm):
    """延期申请."""

    working_days = IntegerField(
        "Working days 延期工作日",
        validators=[
            InputRequired("Say how many working days."),
            NumberRange(1, MAX_EXTENSION_DAYS, f"1 to {MAX_EXTENSION_DAYS} working days."),
        ],
        description=f"1 to {MAX_EXTENSION_DAYS}; a reviewer decides.",
    )
    extension_reason = _text("Reason 延期理由", "Give the reason for the extension.")


class ObjectionForm(FlaskForm):
    """退单."""

    reason_code = SelectField(
        "Reason 退单原因",
        choices=[SelectChoice(reason.value, label) for reason, label in OBJECTION_LABELS.items()],
        validators=[InputRequired("Choose the reason for the objection.")],
    )
    objection_text = _text(
        "Explanation 退单说明",
        "Explain the objection.",
        "Why the order is not yours, and whose it is if you know.",
    )


# The forms of the actions a liaison takes, by the lifecycle's action.
FORMS: dict[Action, type[FlaskForm]] = {
    Action.ACCEPT: AcceptForm,
    Action.CONTACT: ContactForm,
    Action.PROGRESS: ProgressForm,
    Action.ANSWER: AnswerForm,
    Action.REQUEST_EXTENSION: ExtensionForm,
    Action.OBJECT: ObjectionForm,
}
