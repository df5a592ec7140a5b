"""``hotline survey-call``: play the citizen's side of a survey call on the simulator.

    hotline survey-call ATT-KEY --press 1,1,1          # responded, solved, satisfied
    hotline survey-call ATT-KEY --say 有 --say 解决了 --say 满意
    hotline survey-call ATT-KEY --press 1,3 --hang-up-after 2
    hotline survey-call ATT-KEY --machine               # an answering machine picks up

The attempt (``survey_attempts.attempt_key``) must exist: the worker writes it when it
places the call. Without ``--url`` the call runs in process against this app's database.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.simulator import make_simulator
from ivr.simulator_survey import run_survey_cli
from tickets.models import Survey, SurveyAttempt
from webapp.settings import Settings


@click.command("survey-call")
@click.argument("attempt_key")
@click.option(
    "--press", default="", help="Keys for each question in turn, e.g. 1,1,1 (empty: silence)."
)
@click.option(
    "--say", "speech", default="", help="Words for each question in turn, e.g. 有,解决了,满意."
)
@click.option("--machine", is_flag=True, help="An answering machine answers (the robot hangs up).")
@click.option("--hang-up-after", type=int, default=None, help="Hang up after this many answers.")
@click.option(
    "--to", "to_number", default=None, help="The citizen's number (default: the survey's)."
)
@click.option("--url", default=None, help="A running server; without it the call runs in process.")
@with_appcontext
def survey_call_command(
    attempt_key: str,
    press: str,
    speech: str,
    machine: bool,
    hang_up_after: int | None,
    to_number: str | None,
    url: str | None,
) -> None:
    """Answer a survey call as the citizen: prints what they hear."""
    settings: Settings = current_app.config["HOTLINE_SETTINGS"]
    inputs = [key.strip() for key in press.split(",")] if press else []
    inputs += [f"speech:{words.strip()}" for words in speech.split(",")] if speech else []
    if hang_up_after is not None:
        inputs = inputs[: max(hang_up_after, 0)]
    number = to_number or _survey_number(attempt_key)
    if number is None:
        raise click.ClickException(f"no survey attempt {attempt_key!r} (or it has no number)")
    simulator = make_simulator(
        auth_token=settings.webhook_auth_token,
        public_base_url=settings.public_base_url,
        url=url,
        app=None if url else current_app,
    )
    sys.exit(
        run_survey_cli(
            simulator,
            attempt_key,
            to_number=number,
            inputs=inputs,
            answered_by="machine_start" if machine else "human",
        )
    )


def _survey_number(attempt_key: str) -> str | None:
    with Session(current_app.extensions["hotline.engine"]) as session:
        return session.scalar(
            select(Survey.to_number)
            .join(SurveyAttempt, SurveyAttempt.survey_id == Survey.id)
            .where(SurveyAttempt.attempt_key == attempt_key)
        )
