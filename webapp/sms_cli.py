"""SMS from the app: the sweep the worker runs (``webapp.worker.deliver_sms``, every
minute), the hook that asks the worker for one right after a commit that put a text in the
outbox, and the ``hotline sms`` commands:

    hotline sms send-due                  # one sweep now: escalate, send what is due
    hotline sms outbox --status pending   # the outbox, numbers masked
"""

from __future__ import annotations

import logging
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.models import SmsMessage, SmsStatus, WorkOrder
from tickets.phones import mask_number
from webapp.settings import Settings
from webapp.sms import run_sweep

log = logging.getLogger(__name__)


# -- hotline sms ------------------------------------------------------------------------------


@click.group("sms")
def sms_group() -> None:
    """The SMS outbox: send what is due now, list it."""


@sms_group.command("send-due")
@with_appcontext
def send_due_command() -> None:
    """Run one sweep now (what the worker does every minute): escalate overdue work orders,
    then send the texts that are due. Prints what happened."""
    counts = run_sweep(current_app)
    for name, value in counts.as_dict().items():
        click.echo(f"{name}: {value}")
    if counts.paused:
        raise click.ClickException(
            "sending is paused: the SMS provider refused the account or sender (see the "
            "log); the messages wait until it is fixed"
        )


@sms_group.command("outbox")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in SmsStatus]),
    help="Only rows in this status (repeatable).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def outbox_command(statuses: tuple[str, ...], limit: int) -> None:
    """The outbox, newest first (numbers masked)."""
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    query = (
        select(SmsMessage, WorkOrder.number)
        .outerjoin(WorkOrder, WorkOrder.id == SmsMessage.work_order_id)
        .order_by(SmsMessage.id.desc())
        .limit(limit)
    )
    if statuses:
        query = query.where(SmsMessage.status.in_([SmsStatus(s) for s in statuses]))
    with Session(current_app.extensions["hotline.engine"]) as session:
        rows = session.execute(query).all()
    if not rows:
        click.echo("no messages")
        return

    def local(at: datetime | None) -> str:
        return f"{at.astimezone(settings.zone):%m-%d %H:%M}" if at else "-"

    click.echo(
        f"{'id':>6} {'status':<10} {'purpose':<12} {'to':<16} {'order':<16} {'due':<11} "
        f"{'tries':>5} {'next/sent':<11} error"
    )
    for message, order_number in rows:
        when = message.sent_at if message.status is SmsStatus.SENT else message.next_attempt_at
        error = f"{message.error_code or ''} {message.last_error}".strip()
        click.echo(
            f"{message.id:>6} {message.status.value:<10} {message.purpose.value:<12} "
            f"{mask_number(message.to_number):<16} {order_number or '-':<16} "
            f"{local(message.due_at):<11} {message.attempts:>5} {local(when):<11} "
            f"{error[:80]}"
        )
