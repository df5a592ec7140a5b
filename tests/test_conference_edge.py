"""The conference choreography driven for real: console commands and Twilio's callbacks
change the stored room, the call-takers' states and the call's history, and the console
gateway shows the REST calls that were made (after the commit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.conference_messages import (
    AddParty,
    CancelTransfer,
    ColdTransfer,
    CompleteTransfer,
    ConfirmHandoff,
    EndCall,
    Hold,
    Refusal,
    RemoveParty,
    Resume,
    StartWarmTransfer,
    Target,
    WrapUp,
)
from callflows.conference_roster import ConferenceState
from ivr.conference_edge import run_command
from ivr.gateway import ConsoleGateway, ParticipantGone
from ivr.gateway_conference import AddedParticipant
from tests.support.conference_calls import (
    PUBLIC,
    answers,
    citizen_joins,
    history,
    leg_status,
    new_conference_sid,
    on_duty,
    profile_of,
    queue_caller,
    room_event,
    state_of,
)
from tests.support.webhooks import TwilioSender, call_params
from tickets.models import Call, CallTakerState, ConferenceRoom, Staff

S = CallTakerState
DEPARTMENT = Target("+868916000001", name="城关区住建局")
COLLEAGUE_NUMBER = "+8613900000002"


@dataclass
class Connected:
    sid: str
    conference: str
    taker: Staff
    leg: AddedParticipant

    @property
    def by(self) -> str:
        return str(self.taker.id)


def room_state(db: Session, sid: str) -> ConferenceState:
    db.expire_all()
    room = db.scalar(select(ConferenceRoom).where(ConferenceRoom.call_sid == sid))
    assert room is not None
    return ConferenceState.from_dict(room.state)


def call_row(db: Session, sid: str) -> Call:
    db.expire_all()
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None
    return call


def command(app: Flask, sid: str, what: object) -> None:
    with app.app_context():
        run_command(sid, what)  # type: ignore[arg-type]


def leg_labelled(gateway: ConsoleGateway, label: str) -> AddedParticipant:
    return next(leg for leg in gateway.added if leg.label == label)


@pytest.fixture
def connected(twilio: TwilioSender, db: Session, gateway: ConsoleGateway) -> Connected:
    """A caller talking to the call-taker tenzin in their own room."""
    taker = on_duty(db, "tenzin", languages=("bo", "zh"))
    sid = queue_caller(twilio, lang="bo")
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    [leg] = gateway.added
    answers(twilio, leg, conference)
    assert state_of(db, taker) is S.ON_CALL
    return Connected(sid, conference, taker, leg)


def citizen_hangs_up(twilio: TwilioSender, call: Connected) -> None:
    room_event(
        twilio,
        call.sid,
        "participant-leave",
        conference_sid=call.conference,
        label="citizen",
        call_sid=call.sid,
    )
    room_event(twilio, call.sid, "conference-end", conference_sid=call.conference)


# -- the caller hangs up ------------------------------------------------------------------


def test_caller_who_hangs_up_while_the_taker_rings_frees_the_taker(twilio, db, gateway):
    taker = on_duty(db, "tenzin")
    sid = queue_caller(twilio)
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    [leg] = gateway.added
    leg_status(twilio, leg, "ringing")

    citizen_hangs_up(twilio, Connected(sid, conference, taker, leg))

    assert [(r.conference_sid, r.label) for r in gateway.removed] == [(conference, leg.label)]
    assert gateway.ended == [conference]
    profile = profile_of(db, taker)
    assert profile.state is S.AVAILABLE and profile.call_sid is None
    call = call_row(db, sid)
    assert call.abandoned_at is not None and call.queue_left_at is not None
    assert room_state(db, sid).phase.value == "ended"
    leg_status(twilio, leg, "canceled")  # Twilio confirms the cancel: not the taker's miss
    assert state_of(db, taker) is S.AVAILABLE


def test_caller_who_hangs_up_in_the_queue_is_abandoned(twilio, db, gateway):
    sid = queue_caller(twilio)
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    citizen_hangs_up(twilio, Connected(sid, conference, None, None))  # type: ignore[arg-type]
    call = call_row(db, sid)
    assert call.abandoned_at is not None and call.queue_wait_seconds is not None


def test_caller_who_hangs_up_on_hold_ends_the_room_and_the_taker_is_told(
    app, twilio, db, gateway, connected
):
    command(app, connected.sid, Hold(connected.by))
    [hold] = gateway.held
    assert (hold.conference_sid, hold.label, hold.hold) == (connected.conference, "citizen", True)
    assert hold.hold_url == f"{PUBLIC}/voice/audio/hold-music.mp3"

    citizen_hangs_up(twilio, connected)

    profile = profile_of(db, connected.taker)
    assert profile.state is S.WRAP_UP and profile.wrap_up_until is not None
    notes = [p for kind, p in history(db, connected.sid) if kind == "conference:notify"]
    assert notes == [{"who": connected.by, "outcome": "the caller hung up"}]
    assert call_row(db, connected.sid).abandoned_at is None  # they were served
    assert room_state(db, connected.sid).phase.value == "ended"


# -- hold, transfers, parties -------------------------------------------------------------


def test_hold_and_resume_are_one_participant_each(app, db, gateway, connected):
    command(app, connected.sid, Hold(connected.by))
    command(app, connected.sid, Resume(connected.by))
    assert [(h.label, h.hold, h.hold_url) for h in gateway.held] == [
        ("citizen", True, f"{PUBLIC}/voice/audio/hold-music.mp3"),
        ("citizen", False, None),
    ]
    steps = [(k, p["who"]) for k, p in history(db, connected.sid)][-2:]
    assert steps == [("conference:hold", connected.by), ("conference:resume", connected.by)]


def test_warm_transfer_completes(app, twilio, db, gateway, connected):
    command(app, connected.sid, StartWarmTransfer(connected.by, DEPARTMENT))
    consult = leg_labelled(gateway, "consult-1")
    assert consult.to == DEPARTMENT.address and consult.early_media
    assert consult.timeout_seconds == 30 and not consult.end_conference_on_exit
    assert gateway.held[-1].label == "citizen" and gateway.held[-1].hold

    answers(twilio, consult, connected.conference)
    command(app, connected.sid, CompleteTransfer(connected.by))

    assert gateway.held[-1].label == "citizen" and not gateway.held[-1].hold
    assert gateway.removed[-1].label == connected.leg.label
    assert state_of(db, connected.taker) is S.WRAP_UP
    state = room_state(db, connected.sid)
    assert state.phase.value == "talking"
    assert state.get_party("consult-1").state.value == "joined"


def test_warm_transfer_is_cancelled(app, twilio, db, gateway, connected):
    command(app, connected.sid, StartWarmTransfer(connected.by, DEPARTMENT))
    consult = leg_labelled(gateway, "consult-1")
    answers(twilio, consult, connected.conference)

    command(app, connected.sid, CancelTransfer(connected.by))

    assert gateway.removed[-1].label == "consult-1"
    assert gateway.held[-1].label == "citizen" and not gateway.held[-1].hold
    assert state_of(db, connected.taker) is S.ON_CALL
    assert room_state(db, connected.sid).phase.value == "talking"


def test_a_consulted_party_who_does_not_answer_gives_the_caller_back(
    app, twilio, db, gateway, connected
):
    command(app, connected.sid, StartWarmTransfer(connected.by, DEPARTMENT))
    leg_status(twilio, leg_labelled(gateway, "consult-1"), "no-answer")
    assert gateway.held[-1].label == "citizen" and not gateway.held[-1].hold
    notes = [p["outcome"] for kind, p in history(db, connected.sid) if kind == "conference:notify"]
    assert notes == ["城关区住建局 did not answer (no-answer)"]
    assert state_of(db, connected.taker) is S.ON_CALL


def test_cold_transfer_to_a_colleague_hands_the_call_over(app, twilio, db, gateway, connected):
    colleague = on_duty(db, "dolma", phone_number=COLLEAGUE_NUMBER)
    target = Target(COLLEAGUE_NUMBER, name="Dolma", staff_id=str(colleague.id))
    command(app, connected.sid, ColdTransfer(connected.by, target))
    assert state_of(db, connected.taker) is S.WRAP_UP
    assert state_of(db, colleague) is S.RINGING
    answers(twilio, leg_labelled(gateway, "transfer-1"), connected.conference)
    assert state_of(db, colleague) is S.ON_CALL
    assert room_state(db, connected.sid).taker == "transfer-1"


def test_three_way_and_four_party_calls(app, twilio, db, gateway, connected):
    command(app, connected.sid, AddParty(connected.by, DEPARTMENT))
    answers(twilio, leg_labelled(gateway, "party-1"), connected.conference)
    three = room_state(db, connected.sid)
    assert sum(p.is_present for p in three.roster) == 3

    other = Target("+868916000002", name="城关区市场监管局")
    command(app, connected.sid, AddParty(connected.by, other))
    answers(twilio, leg_labelled(gateway, "party-2"), connected.conference)
    four = room_state(db, connected.sid)
    assert [p.label for p in four.roster if p.is_present] == [
        "citizen",
        connected.leg.label,
        "party-1",
        "party-2",
    ]
    assert four.phase.value == "talking"

    command(app, connected.sid, RemoveParty(connected.by, "party-1"))
    assert gateway.removed[-1].label == "party-1"


def test_a_party_who_already_left_is_no_error(app, db, gateway, twilio, connected):
    command(app, connected.sid, AddParty(connected.by, DEPARTMENT))
    answers(twilio, leg_labelled(gateway, "party-1"), connected.conference)
    gateway.fail_next = ParticipantGone("gone", code=20404, status=404)

    command(app, connected.sid, RemoveParty(connected.by, "party-1"))  # no exception

    state = room_state(db, connected.sid)
    assert state.get_party("party-1").is_over
    assert state.phase.value == "talking"


def test_a_refused_command_says_why_and_is_logged(app, db, connected):
    with pytest.raises(Refusal, match="nobody is being consulted"):
        command(app, connected.sid, CompleteTransfer(connected.by))
    kind, params = history(db, connected.sid)[-1]
    assert kind == "conference:refused" and params["who"] == connected.by


def test_end_call_ends_the_room_and_wraps_up(app, db, gateway, connected):
    command(app, connected.sid, EndCall(connected.by))
    assert gateway.ended == [connected.conference]
    assert state_of(db, connected.taker) is S.WRAP_UP
    command(app, connected.sid, WrapUp(connected.by))  # the console's button: already so
    assert state_of(db, connected.taker) is S.WRAP_UP
    with pytest.raises(Refusal, match="already wrapping up"):
        command(app, connected.sid, WrapUp(connected.by))


def test_a_taker_who_hangs_up_sends_the_caller_back_to_the_queue(
    app, twilio, db, gateway, connected
):
    room_event(
        twilio,
        connected.sid,
        "participant-leave",
        conference_sid=connected.conference,
        label=connected.leg.label,
        call_sid=connected.leg.call_sid,
    )
    [redirect] = gateway.redirected
    assert redirect.call_sid == connected.sid
    assert redirect.url == f"{PUBLIC}/voice/requeue?lang=bo"
    assert state_of(db, connected.taker) is S.WRAP_UP

    dolma = on_duty(db, "dolma", languages=("bo",), phone_number=COLLEAGUE_NUMBER)
    body = twilio.post("/voice/requeue?lang=bo", call_params(connected.sid)).get_data(True)
    assert f">{connected.sid}</Conference>" in body
    assert gateway.added[-1].label == f"taker-{dolma.id}"
    assert call_row(db, connected.sid).queue_left_at is None


# -- callbacks twice, late, out of order ----------------------------------------------------


def test_callbacks_delivered_twice_or_late_change_nothing(twilio, db, gateway, connected):
    before = room_state(db, connected.sid)
    steps = history(db, connected.sid)
    join = {
        "conference_sid": connected.conference,
        "label": connected.leg.label,
        "call_sid": connected.leg.call_sid,
    }
    room_event(twilio, connected.sid, "participant-join", token="same", **join)
    room_event(twilio, connected.sid, "participant-join", token="same", **join)
    leg_status(twilio, connected.leg, "ringing")  # late
    leg_status(twilio, connected.leg, "initiated")  # late
    citizen_joins(twilio, connected.sid, connected.conference)

    assert room_state(db, connected.sid) == before
    assert history(db, connected.sid) == steps
    assert state_of(db, connected.taker) is S.ON_CALL
    assert len(gateway.added) == 1


def test_every_step_is_on_the_call_with_who(app, twilio, db, gateway, connected):
    command(app, connected.sid, Hold(connected.by))
    command(app, connected.sid, Resume(connected.by))
    command(app, connected.sid, EndCall(connected.by))
    steps = [(kind, params["who"]) for kind, params in history(db, connected.sid)]
    label = connected.leg.label
    assert steps == [
        ("conference:ring-call-taker", "routing"),
        ("conference:participant-ringing", label),
        ("conference:participant-join", label),
        ("conference:hold", connected.by),
        ("conference:resume", connected.by),
        ("conference:end-call", connected.by),
        ("conference:call-ended", "citizen"),
    ]


# -- the emergency lane -----------------------------------------------------------------------


def emergency_call(twilio: TwilioSender) -> str:
    from tests.support.webhooks import new_call_sid

    sid = new_call_sid()
    twilio.post("/voice/incoming", call_params(sid, CallStatus="ringing"))
    twilio.post("/voice/step/language?lang=zh&try=1", call_params(sid, Digits="9"))
    twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="1"))
    return sid


def test_emergency_three_way_with_a_hand_off_receipt(app, twilio, db, gateway):
    taker = on_duty(db, "tenzin")
    sid = emergency_call(twilio)

    [line] = gateway.placed
    assert line.label == "emergency-fire" and line.room == sid
    assert not line.end_conference_on_exit
    [leg] = gateway.added
    assert leg.label == f"taker-{taker.id}" and leg.conference == sid
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    room_event(
        twilio,
        sid,
        "participant-join",
        conference_sid=conference,
        label="emergency-fire",
        call_sid=line.sid,
    )
    answers(twilio, leg, conference)
    assert state_of(db, taker) is S.ON_CALL

    at = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    command(app, sid, ConfirmHandoff(str(taker.id), taken_by="119 operator 7", at=at))

    [handoff] = room_state(db, sid).handoffs
    assert handoff.line == "fire" and handoff.taken_by == "119 operator 7"
    assert handoff.confirmed_by == str(taker.id) and handoff.confirmed_at == at
    assert gateway.removed[-1].label == leg.label
    assert state_of(db, taker) is S.WRAP_UP
    kinds = [kind for kind, _ in history(db, sid)]
    assert kinds[0] == "conference:emergency-lane" and "conference:confirm-handoff" in kinds


def test_emergency_with_nobody_free_rings_the_line_alone(twilio, db, gateway):
    sid = emergency_call(twilio)
    assert len(gateway.placed) == 1 and gateway.added == []
    assert (
        "conference:emergency-no-taker",
        {"who": "routing", "outcome": "no call-taker free"},
    ) in (history(db, sid))


def test_an_emergency_line_that_never_answers_leaves_the_caller_with_the_taker(twilio, db, gateway):
    taker = on_duty(db, "tenzin")
    sid = emergency_call(twilio)
    conference = new_conference_sid()
    citizen_joins(twilio, sid, conference)
    answers(twilio, gateway.added[0], conference)
    for attempt in range(3):
        leg = gateway.placed[attempt]
        path = leg.status_callback_url.removeprefix(PUBLIC)
        twilio.post(path, {"CallSid": leg.sid, "CallStatus": "busy", "SequenceNumber": "3"})

    assert len(gateway.placed) == 3
    assert gateway.redirected == []  # not sent away from the call-taker to the queue
    state = room_state(db, sid)
    assert state.get_party("emergency-fire").is_over and state.phase.value == "talking"
    assert state_of(db, taker) is S.ON_CALL
