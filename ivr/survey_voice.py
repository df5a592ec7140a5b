"""The satisfaction survey call at the Twilio edge (issue 5, point 3).

The worker places the survey call with the attempt's key in its URLs (``ivr.survey_caller``);
Twilio then knocks here:

- ``/voice/survey/start?attempt=<key>``: the citizen's phone answered. An answering
  machine (answering-machine detection: ``machine_*``, ``fax``) is hung up on; the status
  callback records the failed attempt. Otherwise the survey flow starts
  (``callflows.survey``): who is calling, which order (its topic in a few words, never for
  a confidential order), the first question. An unknown attempt hears an apology.
- ``/voice/step/survey?<state>``: a Gather's answer. The state travels in the signed URL;
  the flow's next turn is answered, the answers so far are stored on the survey after
  every step (``tickets.survey_results.record_answers``) and, when the conversation ends,
  the survey is finished (do-not-call, or the decision: closed or the reviewer queue).
- ``/voice/survey-status?attempt=<key>``: the call's status callback, recorded once. A call
  that ends with answers but an unfinished conversation (a hang-up midway) finishes the
  survey with what was said; then the attempt's status goes to the scheduler
  (``tickets.surveys.record_attempt_status``), which sees a finished survey and does not
  call again.

Every route checks Twilio's signature (403), stores its webhook once, and never answers
500: a failure becomes the survey's apology (goodbye, not the inbound call's queue).
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from callflows.front_door import CallerInput
from callflows.steps import Hangup, Language, Say, Stage
from callflows.survey import SurveyFlow, SurveyOrder, SurveyState, SurveyTurn, survey_apology
from ivr.events import CallStatusEvent
from ivr.persist import persist, webhook_from_request
from ivr.request_session import request_session
from ivr.safety import caller_language, safe_voice_route, twiml_response
from ivr.voice import require_twilio_signature
from tickets import survey_results, surveys
from tickets.db import utcnow
from tickets.models import Survey, SurveyAttempt, WorkOrder

log = logging.getLogger(__name__)
bp = Blueprint("survey_voice", __name__, url_prefix="/voice")
bp.before_request(require_twilio_signature)
METHODS = ["POST"]
START_PATH = "/voice/survey/start"
STATUS_PATH = "/voice/survey-status"
STEP_PATH = f"/voice/step/{Stage.SURVEY.value}"
# Answering-machine detection (AnsweredBy): anything but a person is hung up on.
HUMAN_ANSWERS = frozenset({"", "human", "unknown"})
FLOW = SurveyFlow()


def _apology() -> Response:
    """The survey's safety net: sorry, goodbye (a survey caller is never queued)."""
    return twiml_response(survey_apology(caller_language()))


def _nothing() -> Response:
    return twiml_response(())


def _language(code: str | None) -> Language:
    try:
        return Language(code or "zh")
    except ValueError:
        return Language.MANDARIN


def _attempt_key() -> str:
    return request.args.get("attempt", "")[:40]


def _call_sid() -> str:
    return request.values.get("CallSid", "")[:34]


# -- the scheduler's side (tickets.surveys) -------------------------------------------------


def find_attempt(session: Session, key: str) -> SurveyAttempt | None:
    """The attempt whose key is in the URL."""
    return surveys.find_attempt(session, key) if key else None


def record_attempt_status(
    session: Session,
    key: str,
    *,
    call_sid: str,
    status: str,
    answered_by: str | None,
    at: datetime,
) -> None:
    """Hand the call's progress to the scheduler: it records the attempt (a machine or no
    answer is a failed attempt) and leaves a finished survey alone."""
    surveys.record_attempt_status(
        session, key, call_sid=call_sid, status=status, answered_by=answered_by, at=at
    )


def _survey_of(
    session: Session, key: str, *, lock: bool = False
) -> tuple[SurveyAttempt, Survey] | None:
    """The attempt and its survey; ``lock``: the survey row is held until the commit, so
    the last answer's step and the call's final status (which Twilio may send at the same
    moment when the citizen answers and hangs up at once) finish the survey one at a time:
    the second sees it finished."""
    attempt = find_attempt(session, key)
    if attempt is None:
        return None
    survey = session.get(Survey, attempt.survey_id, with_for_update=lock, populate_existing=lock)
    return (attempt, survey) if survey is not None else None


# -- the routes ----------------------------------------------------------------------------


@bp.route("/survey/start", methods=METHODS)
@safe_voice_route(fallback=_apology)
def start() -> Response:
    """The citizen's phone answered the survey call (or a machine did)."""
    key = _attempt_key()
    answered_by = request.values.get("AnsweredBy", "").strip().lower()[:24]
    persist(
        webhook_from_request(
            "survey-start",
            _call_sid(),
            "survey-start",
            extra={"attempt": key, "answered_by": answered_by},
        ),
        now=True,
    )
    if answered_by not in HUMAN_ANSWERS:
        log.info("survey call %s answered by %s: hanging up", _call_sid(), answered_by)
        return twiml_response((Hangup(),))
    session = request_session()
    found = _survey_of(session, key)
    if found is None:
        log.warning("survey call %s: no attempt %r", _call_sid(), key)
        return twiml_response(survey_apology(Language.MANDARIN))
    attempt, survey = found
    language = _language(survey.language)
    if survey.status in survey_results.FINISHED:
        log.warning("survey %s is %s: call %s ends", survey.id, survey.status, _call_sid())
        return twiml_response((Say("survey_thanks", language), Hangup()))
    order = session.get_one(WorkOrder, survey.work_order_id)
    about = SurveyOrder(
        number=order.number,
        topic="" if order.is_confidential else order.summary,
        is_confidential=order.is_confidential,
    )
    turn = FLOW.start(about, survey_id=attempt.attempt_key, language=language)
    session.rollback()  # read only
    return twiml_response(turn.steps)


@bp.route(f"/step/{Stage.SURVEY.value}", methods=METHODS)
@safe_voice_route(fallback=_apology)
def answer() -> Response:
    """The citizen's answer (or silence) to the open question."""
    try:
        state = SurveyState.from_dict(request.args)
    except ValueError as problem:
        log.warning("survey step with a bad state: %s", problem)
        return _apology()
    given = CallerInput.parse(request.values.get("Digits"), request.values.get("SpeechResult"))
    turn = FLOW.handle(state, given)
    persist(
        webhook_from_request(
            f"step:{Stage.SURVEY.value}",
            extra={"attempt": state.survey_id, "path": turn.path},
        ),
        now=True,
    )
    try:
        _store(turn)
    except Exception:
        request_session().rollback()
        # The citizen goes on: the next step's URL carries every answer so far, and its
        # store fills what this one could not.
        log.exception("survey %s: could not store the answers of %s", state.survey_id, turn.path)
    return twiml_response(turn.steps)


def _store(turn: SurveyTurn) -> None:
    session = request_session()
    found = _survey_of(session, turn.state.survey_id, lock=True)
    if found is None:
        log.error("survey step for an unknown attempt %r: answers lost", turn.state.survey_id)
        return
    _, survey = found
    now = utcnow()
    survey_results.record_answers(session, survey, turn.state, call_sid=_call_sid(), at=now)
    if turn.is_finished:
        outcome = survey_results.finish(session, survey, opted_out=turn.opted_out, at=now)
        log.info("survey %s finished: %s", survey.id, outcome.value)
    session.commit()


@bp.route("/survey-status", methods=METHODS)
@safe_voice_route(fallback=_nothing)
def status() -> Response:
    """The survey call's progress; its end finishes a conversation cut short."""
    key = _attempt_key()
    event = CallStatusEvent.parse(request.values)
    status_value = event.status.value if event.status else ""
    answered_by = request.values.get("AnsweredBy", "").strip().lower()[:24] or None
    hook = webhook_from_request(
        "survey-status",
        event.call_sid,
        "survey-status",
        status_value,
        event.sequence_number,
        sequence_number=event.sequence_number,
        extra={"attempt": key},
    )
    if persist(hook, now=True) is False:
        return _nothing()  # a retry: done the first time
    if not key or event.status is None:
        log.warning("survey status without an attempt or a status: %s", request.values)
        return _nothing()
    session = request_session()
    found = _survey_of(session, key, lock=event.status.is_final)
    if found is None:
        log.warning("survey status for an unknown attempt %r", key)
        return _nothing()
    _, survey = found
    if event.status.is_final:
        outcome = survey_results.end_of_call(session, survey, call_sid=event.call_sid, at=event.at)
        if outcome is not survey_results.Outcome.UNCHANGED:
            log.info("survey %s ended midway: %s", survey.id, outcome.value)
    record_attempt_status(
        session,
        key,
        call_sid=event.call_sid,
        status=status_value,
        answered_by=answered_by,
        at=event.at,
    )
    session.commit()
    return _nothing()
