"""The conference choreography of issue 3 (point 3) as a pure state machine.

No Twilio, no database: each row starts from a named state (built by running the machine
itself through a short script, so every start state is one the machine can reach), feeds
one console command or Twilio callback, and states the phase, the parties and the effects
the edge must carry out, in order. Log entries are checked on their own, so the rows show
only what reaches Twilio and the console.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import pytest

from callflows.conference import ALLOWED_PHASES, LEG_SETTINGS, ConferenceFlow, ConferencePolicy
from callflows.conference_messages import (
    AddParty,
    CancelTransfer,
    ColdTransfer,
    Command,
    CompleteTransfer,
    ConferenceEnded,
    ConfirmHandoff,
    CreateParticipant,
    Effect,
    EmergencyTransfer,
    EndCall,
    EndConference,
    Event,
    FailReason,
    Hold,
    LogEntry,
    NotifyTaker,
    Operation,
    OperationFailed,
    Outcome,
    ParticipantFailed,
    ParticipantGone,
    ParticipantHeld,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantResumed,
    ParticipantRinging,
    RedirectCitizenToQueue,
    Refusal,
    RemoveParticipant,
    RemoveParty,
    Resume,
    RingTaker,
    StartWarmTransfer,
    StartWrapUp,
    TakerMissedCall,
    Target,
    UpdateParticipant,
    WrapUp,
)
from callflows.conference_roster import (
    CITIZEN,
    ConferenceState,
    PartyState,
    Phase,
    Role,
)

CALL = "CA" + "c" * 32
ROOM = "CF" + "1" * 32
NEXT_ROOM = "CF" + "2" * 32
OTHER_ROOM = "CF" + "9" * 32
FLOW = ConferenceFlow()
AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)

TAKER = Target("+8613800000007", "Zhang Wei", "7")
OTHER_TAKER = Target("+8613800000008", "Wang Fang", "8")
COLLEAGUE = Target("client:staff-9", "Li Na", "9")
HOUSING = Target("+868916000001", "Housing bureau")
WATER = Target("+868916000002", "Water company")
POLICE = "110"
COMMANDS = tuple(ALLOWED_PHASES)

Input = Command | Event


# -- helpers ------------------------------------------------------------------------------


def step(state: ConferenceState, given: Input, flow: ConferenceFlow = FLOW) -> Outcome:
    if isinstance(given, COMMANDS):
        return flow.command(state, given)
    return flow.event(state, given)


def joined(label: str, room: str = ROOM) -> ParticipantJoined:
    return ParticipantJoined(label, conference_sid=room)


def left(label: str, room: str = ROOM) -> ParticipantLeft:
    return ParticipantLeft(label, conference_sid=room)


def failed(label: str, reason: FailReason = FailReason.NO_ANSWER) -> ParticipantFailed:
    return ParticipantFailed(label, reason=reason)


def create(label: str, to: str, role: Role, timeout: int) -> CreateParticipant:
    start, end, early_media = LEG_SETTINGS[role]
    return CreateParticipant(label, to, role, start, end, early_media, False, timeout)


def tell(message: str, staff_id: str = "7") -> NotifyTaker:
    return NotifyTaker(staff_id, message)


def remove(label: str) -> RemoveParticipant:
    return RemoveParticipant(label)


def without_logs(effects: tuple[Effect, ...]) -> tuple[Effect, ...]:
    return tuple(effect for effect in effects if not isinstance(effect, LogEntry))


HOLD_CITIZEN = UpdateParticipant(CITIZEN, True)
RESUME_CITIZEN = UpdateParticipant(CITIZEN, False)
REQUEUE = RedirectCitizenToQueue("nobody else is on the call")
TAKER_LEG = create("taker-7", TAKER.address, Role.CALL_TAKER, 20)
POLICE_LEG = create("emergency-police", POLICE, Role.EMERGENCY_LINE, 30)


# -- the start states ---------------------------------------------------------------------

# name: (the state it starts from, what happens next, the phase it ends in)
SCRIPTS: dict[str, tuple[str, tuple[Input, ...], Phase]] = {
    "ringing": ("waiting", (RingTaker("routing", TAKER),), Phase.RINGING),
    "talking": ("ringing", (ParticipantRinging("taker-7"), joined("taker-7")), Phase.TALKING),
    "on_hold": ("talking", (Hold("7"),), Phase.TALKING),
    "consult_ringing": (
        "talking",
        (StartWarmTransfer("7", HOUSING), ParticipantRinging("consult-1")),
        Phase.CONSULTING,
    ),
    "consult_joined": ("consult_ringing", (joined("consult-1"),), Phase.CONSULTING),
    "consult_colleague": (
        "talking",
        (StartWarmTransfer("7", COLLEAGUE), joined("consult-1")),
        Phase.CONSULTING,
    ),
    "consult_canceled": ("consult_ringing", (CancelTransfer("7"),), Phase.TALKING),
    "consult_orphaned": ("consult_ringing", (left("taker-7"),), Phase.TRANSFERRING),
    "transferred": ("consult_joined", (CompleteTransfer("7"),), Phase.TALKING),
    "cold_ringing": ("talking", (ColdTransfer("7", HOUSING),), Phase.TRANSFERRING),
    "cold_colleague": ("talking", (ColdTransfer("7", COLLEAGUE),), Phase.TRANSFERRING),
    "party_ringing": ("talking", (AddParty("7", HOUSING),), Phase.TALKING),
    "party_ringing_alone": ("party_ringing", (left("taker-7"),), Phase.TRANSFERRING),
    "three_way": ("party_ringing", (joined("party-1"),), Phase.TALKING),
    "four_party": ("three_way", (AddParty("7", WATER), joined("party-2")), Phase.TALKING),
    "party_1_left": ("four_party", (left("party-1"),), Phase.TALKING),
    "departments_only": ("three_way", (left("taker-7"),), Phase.TALKING),
    "line_ringing": ("talking", (EmergencyTransfer("7", "police", POLICE),), Phase.TALKING),
    "line_joined": ("line_ringing", (joined("emergency-police"),), Phase.TALKING),
    "handed_off": (
        "line_joined",
        (ConfirmHandoff("7", "110 operator 0231", AT, stay=True),),
        Phase.TALKING,
    ),
    "lane_line": ("lane_ringing", (joined("emergency-police"),), Phase.TALKING),
    "lane_taker_ringing": ("lane_line", (RingTaker("routing", TAKER),), Phase.TALKING),
    "requeued": ("talking", (left("taker-7"),), Phase.WAITING),
    "ended": ("talking", (EndCall("7"),), Phase.ENDED),
    "wrapped_up": ("ended", (WrapUp("7"),), Phase.ENDED),
}


@cache
def named(name: str) -> ConferenceState:
    if name == "waiting":
        return FLOW.start(CALL, conference_sid=ROOM)
    if name == "lane_ringing":
        return FLOW.start_emergency(CALL, "police", POLICE, conference_sid=ROOM).state
    base, script, _ = SCRIPTS[name]
    state = named(base)
    for given in script:
        state = step(state, given).state
    return state


ALL_NAMES = ["waiting", "lane_ringing", *SCRIPTS]


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_each_start_state_is_reached_by_its_script(name: str) -> None:
    assert named(name).phase is SCRIPTS[name][2]


# -- the transition table -----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    start: str
    given: Input
    phase: Phase
    effects: tuple[Effect, ...] = ()
    parties: Mapping[str, PartyState] = field(default_factory=dict)
    taker: str | None = None  # the call-taker in charge afterwards, when the row says


def rows(*table: Row) -> list:
    return [pytest.param(row, id=row.id) for row in table]


RINGING_A_CALL_TAKER = rows(
    Row(
        "waiting+ring_taker",
        "waiting",
        RingTaker("routing", TAKER),
        Phase.RINGING,
        (TAKER_LEG,),
        {"taker-7": PartyState.DIALING},
        taker="taker-7",
    ),
    Row(
        "requeued+ring_taker-gets-a-fresh-label",
        "requeued",
        RingTaker("routing", TAKER),
        Phase.RINGING,
        (create("taker-7-2", TAKER.address, Role.CALL_TAKER, 20),),
        {"taker-7": PartyState.LEFT, "taker-7-2": PartyState.DIALING},
    ),
    Row(
        "lane+ring_taker", "lane_ringing", RingTaker("routing", TAKER), Phase.RINGING, (TAKER_LEG,)
    ),
    Row(
        "lane_line+ring_taker-third-party",
        "lane_line",
        RingTaker("routing", TAKER),
        Phase.TALKING,
        (TAKER_LEG,),
    ),
    Row(
        "ringing+taker_rings",
        "ringing",
        ParticipantRinging("taker-7"),
        Phase.RINGING,
        parties={"taker-7": PartyState.RINGING},
    ),
    Row(
        "ringing+taker_joins",
        "ringing",
        joined("taker-7"),
        Phase.TALKING,
        parties={"taker-7": PartyState.JOINED, CITIZEN: PartyState.JOINED},
        taker="taker-7",
    ),
    *(
        Row(
            f"ringing+taker_{reason.value}",
            "ringing",
            failed("taker-7", reason),
            Phase.WAITING,
            (TakerMissedCall("7", reason.value),),
            {"taker-7": PartyState.FAILED},
            taker="",
        )
        for reason in (FailReason.NO_ANSWER, FailReason.BUSY, FailReason.FAILED)
    ),
    Row(
        "ringing+taker_canceled-is-not-a-miss",
        "ringing",
        failed("taker-7", FailReason.CANCELED),
        Phase.WAITING,
        parties={"taker-7": PartyState.FAILED},
    ),
    Row(
        "ringing+taker_create_failed",
        "ringing",
        OperationFailed("taker-7", operation=Operation.CREATE, message="HTTP 400"),
        Phase.WAITING,
        (TakerMissedCall("7", "failed"),),
    ),
    Row(
        "ringing+citizen_hangs_up",
        "ringing",
        left(CITIZEN),
        Phase.ENDED,
        (remove("taker-7"), EndConference(), tell("the caller hung up")),
        {"taker-7": PartyState.FAILED, CITIZEN: PartyState.LEFT},
    ),
    Row(
        "lane_taker_ringing+taker_joins-three-way",
        "lane_taker_ringing",
        joined("taker-7"),
        Phase.TALKING,
        parties={"taker-7": PartyState.JOINED, "emergency-police": PartyState.JOINED},
    ),
)

HOLD_AND_RESUME = rows(
    Row(
        "talking+hold",
        "talking",
        Hold("7"),
        Phase.TALKING,
        (HOLD_CITIZEN,),
        {CITIZEN: PartyState.ON_HOLD, "taker-7": PartyState.JOINED},
    ),
    Row(
        "on_hold+resume",
        "on_hold",
        Resume("7"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        {CITIZEN: PartyState.JOINED},
    ),
    Row(
        "three_way+hold_one_department",
        "three_way",
        Hold("7", "party-1"),
        Phase.TALKING,
        (UpdateParticipant("party-1", True),),
        {"party-1": PartyState.ON_HOLD, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "on_hold+hold_callback-confirms",
        "on_hold",
        ParticipantHeld(CITIZEN, conference_sid=ROOM),
        Phase.TALKING,
        parties={CITIZEN: PartyState.ON_HOLD},
    ),
    Row(
        "talking+late_hold_callback-ignored",
        "talking",
        ParticipantHeld(CITIZEN, conference_sid=ROOM),
        Phase.TALKING,
        parties={CITIZEN: PartyState.JOINED},
    ),
    Row(
        "on_hold+late_unhold_callback-ignored",
        "on_hold",
        ParticipantResumed(CITIZEN, conference_sid=ROOM),
        Phase.TALKING,
        parties={CITIZEN: PartyState.ON_HOLD},
    ),
    Row(
        "on_hold+hold_request_failed-undone",
        "on_hold",
        OperationFailed(CITIZEN, operation=Operation.HOLD, message="HTTP 500"),
        Phase.TALKING,
        (tell("could not hold the caller: HTTP 500"),),
        {CITIZEN: PartyState.JOINED},
    ),
    Row(
        "talking+resume_request_failed-undone",
        "talking",
        OperationFailed(CITIZEN, operation=Operation.RESUME, message="timed out"),
        Phase.TALKING,
        (tell("could not resume the caller: timed out"),),
        {CITIZEN: PartyState.ON_HOLD},
    ),
    Row(
        "on_hold+citizen_hangs_up-ends-cleanly-taker-told",
        "on_hold",
        left(CITIZEN),
        Phase.ENDED,
        (EndConference(), tell("the caller hung up")),
        {CITIZEN: PartyState.LEFT, "taker-7": PartyState.LEFT},
        taker="",
    ),
    Row(
        "on_hold+citizen_already_gone-20404",
        "on_hold",
        ParticipantGone(CITIZEN),
        Phase.ENDED,
        (EndConference(), tell("the caller hung up")),
        {CITIZEN: PartyState.LEFT},
    ),
    Row(
        "on_hold+conference_end",
        "on_hold",
        ConferenceEnded(conference_sid=ROOM),
        Phase.ENDED,
        (tell("the call has ended"),),
        {CITIZEN: PartyState.LEFT, "taker-7": PartyState.LEFT},
    ),
    Row(
        "on_hold+taker_leaves-citizen-requeued",
        "on_hold",
        left("taker-7"),
        Phase.WAITING,
        (REQUEUE,),
        {CITIZEN: PartyState.JOINED, "taker-7": PartyState.LEFT},
        taker="",
    ),
    Row("talking+taker_leaves-requeued", "talking", left("taker-7"), Phase.WAITING, (REQUEUE,)),
)

WARM_TRANSFER = rows(
    Row(
        "talking+warm_transfer",
        "talking",
        StartWarmTransfer("7", HOUSING),
        Phase.CONSULTING,
        (HOLD_CITIZEN, create("consult-1", HOUSING.address, Role.CONSULTEE, 30)),
        {CITIZEN: PartyState.ON_HOLD, "consult-1": PartyState.DIALING},
    ),
    Row(
        "on_hold+warm_transfer-no-second-hold",
        "on_hold",
        StartWarmTransfer("7", HOUSING),
        Phase.CONSULTING,
        (create("consult-1", HOUSING.address, Role.CONSULTEE, 30),),
    ),
    Row(
        "consult_ringing+consultee_joins",
        "consult_ringing",
        joined("consult-1"),
        Phase.CONSULTING,
        parties={"consult-1": PartyState.JOINED, CITIZEN: PartyState.ON_HOLD},
    ),
    *(
        Row(
            f"consult_ringing+consultee_{reason.value}-citizen-back",
            "consult_ringing",
            failed("consult-1", reason),
            Phase.TALKING,
            (tell(f"Housing bureau did not answer ({reason.value})"), RESUME_CITIZEN),
            {"consult-1": PartyState.FAILED, CITIZEN: PartyState.JOINED},
            taker="taker-7",
        )
        for reason in (FailReason.NO_ANSWER, FailReason.BUSY, FailReason.FAILED)
    ),
    Row(
        "consult_joined+consultee_declines-citizen-back",
        "consult_joined",
        left("consult-1"),
        Phase.TALKING,
        (tell("Housing bureau left the call"), RESUME_CITIZEN),
        {"consult-1": PartyState.LEFT, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "consult_joined+complete",
        "consult_joined",
        CompleteTransfer("7"),
        Phase.TALKING,
        (RESUME_CITIZEN, remove("taker-7")),
        {"taker-7": PartyState.LEFT, CITIZEN: PartyState.JOINED, "consult-1": PartyState.JOINED},
        taker="",
    ),
    Row(
        "consult_colleague+complete-colleague-takes-charge",
        "consult_colleague",
        CompleteTransfer("7"),
        Phase.TALKING,
        (RESUME_CITIZEN, remove("taker-7")),
        {"taker-7": PartyState.LEFT},
        taker="consult-1",
    ),
    Row(
        "consult_ringing+cancel-ringing-consultee-removed",
        "consult_ringing",
        CancelTransfer("7"),
        Phase.TALKING,
        (remove("consult-1"), RESUME_CITIZEN),
        {"consult-1": PartyState.FAILED, CITIZEN: PartyState.JOINED},
        taker="taker-7",
    ),
    Row(
        "consult_joined+cancel",
        "consult_joined",
        CancelTransfer("7"),
        Phase.TALKING,
        (remove("consult-1"), RESUME_CITIZEN),
        {"consult-1": PartyState.LEFT, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "consult_ringing+remove_consultee-is-a-cancel",
        "consult_ringing",
        RemoveParty("7", "consult-1"),
        Phase.TALKING,
        (remove("consult-1"), RESUME_CITIZEN),
    ),
    Row(
        "consult_ringing+taker_leaves-citizen-waits-on-hold",
        "consult_ringing",
        left("taker-7"),
        Phase.TRANSFERRING,
        parties={CITIZEN: PartyState.ON_HOLD, "consult-1": PartyState.RINGING},
        taker="",
    ),
    Row(
        "consult_joined+taker_leaves-transfer-completes",
        "consult_joined",
        left("taker-7"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        {CITIZEN: PartyState.JOINED, "consult-1": PartyState.JOINED},
    ),
    Row(
        "consult_orphaned+consultee_joins-citizen-with-them",
        "consult_orphaned",
        joined("consult-1"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        {CITIZEN: PartyState.JOINED, "consult-1": PartyState.JOINED},
    ),
    Row(
        "consult_orphaned+consultee_no_answer-requeued",
        "consult_orphaned",
        failed("consult-1"),
        Phase.WAITING,
        (tell("Housing bureau did not answer (no-answer)"), REQUEUE),
        {CITIZEN: PartyState.JOINED},
    ),
    Row(
        "consult_ringing+citizen_hangs_up",
        "consult_ringing",
        left(CITIZEN),
        Phase.ENDED,
        (remove("consult-1"), EndConference(), tell("the caller hung up")),
        {"consult-1": PartyState.FAILED, "taker-7": PartyState.LEFT},
    ),
    Row(
        "consult_joined+citizen_hangs_up",
        "consult_joined",
        left(CITIZEN),
        Phase.ENDED,
        (EndConference(), tell("the caller hung up")),
    ),
    Row(
        "consult_colleague+citizen_hangs_up-both-staff-told",
        "consult_colleague",
        left(CITIZEN),
        Phase.ENDED,
        (EndConference(), tell("the caller hung up"), tell("the caller hung up", "9")),
    ),
    Row(
        "consult_ringing+create_failed",
        "consult_ringing",
        OperationFailed("consult-1", operation=Operation.CREATE, message="21211 invalid 'To'"),
        Phase.TALKING,
        (tell("could not call Housing bureau: 21211 invalid 'To'"), RESUME_CITIZEN),
        {"consult-1": PartyState.FAILED},
    ),
    Row(
        "consult_canceled+late_canceled_status",
        "consult_canceled",
        failed("consult-1", FailReason.CANCELED),
        Phase.TALKING,
        parties={"consult-1": PartyState.FAILED},
    ),
    Row(
        "consult_canceled+answered_as_we_hung_up-removed-again",
        "consult_canceled",
        joined("consult-1"),
        Phase.TALKING,
        (remove("consult-1"),),
        {"consult-1": PartyState.LEFT, CITIZEN: PartyState.JOINED},
    ),
)

COLD_TRANSFER = rows(
    Row(
        "talking+cold_transfer",
        "talking",
        ColdTransfer("7", HOUSING),
        Phase.TRANSFERRING,
        (
            HOLD_CITIZEN,
            create("transfer-1", HOUSING.address, Role.CONSULTEE, 30),
            remove("taker-7"),
        ),
        {CITIZEN: PartyState.ON_HOLD, "taker-7": PartyState.LEFT, "transfer-1": PartyState.DIALING},
        taker="",
    ),
    Row(
        "cold_ringing+target_joins",
        "cold_ringing",
        joined("transfer-1"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        {CITIZEN: PartyState.JOINED, "transfer-1": PartyState.JOINED},
        taker="",
    ),
    Row(
        "cold_ringing+target_busy-requeued-taker-told",
        "cold_ringing",
        failed("transfer-1", FailReason.BUSY),
        Phase.WAITING,
        (tell("Housing bureau did not answer (busy)"), REQUEUE),
    ),
    Row(
        "cold_ringing+citizen_hangs_up",
        "cold_ringing",
        left(CITIZEN),
        Phase.ENDED,
        (remove("transfer-1"), EndConference()),
    ),
    Row(
        "cold_colleague+colleague_joins-takes-charge",
        "cold_colleague",
        joined("transfer-1"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        taker="transfer-1",
    ),
)

ADDED_PARTIES = rows(
    Row(
        "talking+add_party",
        "talking",
        AddParty("7", HOUSING),
        Phase.TALKING,
        (create("party-1", HOUSING.address, Role.PARTY, 30),),
        {"party-1": PartyState.DIALING, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "three_way+add_second_department",
        "three_way",
        AddParty("7", WATER),
        Phase.TALKING,
        (create("party-2", WATER.address, Role.PARTY, 30),),
    ),
    Row(
        "party_ringing+party_joins",
        "party_ringing",
        joined("party-1"),
        Phase.TALKING,
        parties={"party-1": PartyState.JOINED},
    ),
    Row(
        "party_ringing+party_busy",
        "party_ringing",
        failed("party-1", FailReason.BUSY),
        Phase.TALKING,
        (tell("Housing bureau did not answer (busy)"),),
        {"party-1": PartyState.FAILED, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "four_party+remove_one",
        "four_party",
        RemoveParty("7", "party-1"),
        Phase.TALKING,
        (remove("party-1"),),
        {"party-1": PartyState.LEFT, "party-2": PartyState.JOINED, "taker-7": PartyState.JOINED},
    ),
    Row(
        "four_party+one_hangs_up",
        "four_party",
        left("party-2"),
        Phase.TALKING,
        (tell("Water company left the call"),),
        {"party-2": PartyState.LEFT, "party-1": PartyState.JOINED},
    ),
    Row(
        "party_1_left+remove_answered_20404",
        "party_1_left",
        ParticipantGone("party-1"),
        Phase.TALKING,
        parties={"party-1": PartyState.LEFT},
    ),
    Row(
        "three_way+taker_leaves-citizen-stays-with-department",
        "three_way",
        left("taker-7"),
        Phase.TALKING,
        parties={CITIZEN: PartyState.JOINED, "party-1": PartyState.JOINED},
        taker="",
    ),
    Row(
        "departments_only+last_department_leaves-requeued",
        "departments_only",
        left("party-1"),
        Phase.WAITING,
        (REQUEUE,),
    ),
    Row(
        "party_ringing+taker_leaves-citizen-hears-music",
        "party_ringing",
        left("taker-7"),
        Phase.TRANSFERRING,
        (HOLD_CITIZEN,),
        {CITIZEN: PartyState.ON_HOLD},
    ),
    Row(
        "party_ringing_alone+party_joins",
        "party_ringing_alone",
        joined("party-1"),
        Phase.TALKING,
        (RESUME_CITIZEN,),
        {CITIZEN: PartyState.JOINED},
    ),
    Row(
        "four_party+citizen_hangs_up",
        "four_party",
        left(CITIZEN),
        Phase.ENDED,
        (EndConference(), tell("the caller hung up")),
        {"party-1": PartyState.LEFT, "party-2": PartyState.LEFT},
    ),
)

EMERGENCY = rows(
    Row(
        "talking+emergency_transfer",
        "talking",
        EmergencyTransfer("7", "police", POLICE),
        Phase.TALKING,
        (POLICE_LEG,),
        {"emergency-police": PartyState.DIALING, CITIZEN: PartyState.JOINED},
    ),
    Row(
        "on_hold+emergency_transfer-citizen-off-hold",
        "on_hold",
        EmergencyTransfer("7", "police", POLICE),
        Phase.TALKING,
        (RESUME_CITIZEN, POLICE_LEG),
    ),
    Row(
        "consult_ringing+emergency_transfer-consult-dropped",
        "consult_ringing",
        EmergencyTransfer("7", "police", POLICE),
        Phase.TALKING,
        (remove("consult-1"), RESUME_CITIZEN, POLICE_LEG),
        {"consult-1": PartyState.FAILED},
    ),
    Row(
        "line_ringing+line_joins",
        "line_ringing",
        joined("emergency-police"),
        Phase.TALKING,
        parties={"emergency-police": PartyState.JOINED, "taker-7": PartyState.JOINED},
    ),
    Row(
        "line_ringing+line_busy",
        "line_ringing",
        failed("emergency-police", FailReason.BUSY),
        Phase.TALKING,
        (tell("police did not answer (busy)"),),
    ),
    Row(
        "line_joined+confirm_handoff-taker-leaves",
        "line_joined",
        ConfirmHandoff("7", "110 operator 0231", AT),
        Phase.TALKING,
        (remove("taker-7"),),
        {"taker-7": PartyState.LEFT, "emergency-police": PartyState.JOINED},
        taker="",
    ),
    Row(
        "line_joined+confirm_handoff-taker-stays",
        "line_joined",
        ConfirmHandoff("7", "110 operator 0231", AT, stay=True),
        Phase.TALKING,
        parties={"taker-7": PartyState.JOINED},
    ),
    Row(
        "lane_ringing+line_joins",
        "lane_ringing",
        joined("emergency-police"),
        Phase.TALKING,
        parties={"emergency-police": PartyState.JOINED},
    ),
    Row(
        "lane_ringing+line_no_answer-citizen-in-wait-room",
        "lane_ringing",
        failed("emergency-police"),
        Phase.WAITING,
        parties={"emergency-police": PartyState.FAILED},
    ),
    Row(
        "lane_line+line_leaves-requeued-as-emergency",
        "lane_line",
        left("emergency-police"),
        Phase.WAITING,
        (RedirectCitizenToQueue("nobody else is on the call", is_emergency=True),),
    ),
    Row(
        "lane_taker_ringing+line_leaves-music-until-taker",
        "lane_taker_ringing",
        left("emergency-police"),
        Phase.TRANSFERRING,
        (HOLD_CITIZEN,),
        {"taker-7": PartyState.DIALING},
    ),
    Row(
        "handed_off+taker_leaves-citizen-stays-with-line",
        "handed_off",
        left("taker-7"),
        Phase.TALKING,
        parties={CITIZEN: PartyState.JOINED, "emergency-police": PartyState.JOINED},
    ),
)

ENDING = rows(
    Row(
        "talking+end_call",
        "talking",
        EndCall("7"),
        Phase.ENDED,
        (EndConference(),),
        {CITIZEN: PartyState.LEFT, "taker-7": PartyState.LEFT},
    ),
    Row(
        "consult_ringing+end_call-ringing-leg-cancelled",
        "consult_ringing",
        EndCall("7"),
        Phase.ENDED,
        (remove("consult-1"), EndConference()),
        {"consult-1": PartyState.FAILED},
    ),
    Row(
        "cold_ringing+end_call",
        "cold_ringing",
        EndCall("7"),
        Phase.ENDED,
        (remove("transfer-1"), EndConference()),
    ),
    Row("ended+wrap_up", "ended", WrapUp("7"), Phase.ENDED, (StartWrapUp("7"),)),
    Row(
        "transferred+wrap_up-while-the-call-goes-on",
        "transferred",
        WrapUp("7"),
        Phase.TALKING,
        (StartWrapUp("7"),),
    ),
    Row(
        "talking+conference_end",
        "talking",
        ConferenceEnded(conference_sid=ROOM),
        Phase.ENDED,
        (tell("the call has ended"),),
    ),
    Row("ended+conference_end", "ended", ConferenceEnded(conference_sid=ROOM), Phase.ENDED),
    Row("ended+citizen_leaves", "ended", left(CITIZEN), Phase.ENDED),
    Row(
        "waiting+citizen_hangs_up_in_queue",
        "waiting",
        left(CITIZEN),
        Phase.ENDED,
        (EndConference(),),
    ),
)

LATE_AND_OUT_OF_ORDER = rows(
    Row(
        "consult_ringing+leave_before_join",
        "consult_ringing",
        left("consult-1"),
        Phase.TALKING,
        (tell("Housing bureau left the call"), RESUME_CITIZEN),
        {"consult-1": PartyState.LEFT},
    ),
    Row(
        "consult_joined+ringing_after_join",
        "consult_joined",
        ParticipantRinging("consult-1"),
        Phase.CONSULTING,
        parties={"consult-1": PartyState.JOINED},
    ),
    Row(
        "party_ringing+hold_callback_before_join",
        "party_ringing",
        ParticipantHeld("party-1", conference_sid=ROOM),
        Phase.TALKING,
        parties={"party-1": PartyState.JOINED},
    ),
    Row(
        "party_1_left+join_after_leave-stays-left",
        "party_1_left",
        joined("party-1"),
        Phase.TALKING,
        parties={"party-1": PartyState.LEFT},
    ),
    Row(
        "requeued+old_room_citizen_leave-ignored",
        "requeued",
        left(CITIZEN, ROOM),
        Phase.WAITING,
        parties={CITIZEN: PartyState.JOINED},
    ),
    Row(
        "requeued+old_room_end-ignored",
        "requeued",
        ConferenceEnded(conference_sid=ROOM),
        Phase.WAITING,
    ),
    Row(
        "requeued+citizen_joins_new_room",
        "requeued",
        joined(CITIZEN, NEXT_ROOM),
        Phase.WAITING,
    ),
    Row(
        "talking+callback_about_another_room-ignored",
        "talking",
        left(CITIZEN, OTHER_ROOM),
        Phase.TALKING,
        parties={CITIZEN: PartyState.JOINED},
    ),
    Row(
        "talking+unknown_label-ignored",
        "talking",
        joined("emergency-line"),
        Phase.TALKING,
    ),
)

ALL_ROWS = (
    RINGING_A_CALL_TAKER
    + HOLD_AND_RESUME
    + WARM_TRANSFER
    + COLD_TRANSFER
    + ADDED_PARTIES
    + EMERGENCY
    + ENDING
    + LATE_AND_OUT_OF_ORDER
)


@pytest.mark.parametrize("row", ALL_ROWS)
def test_transition(row: Row) -> None:
    outcome = step(named(row.start), row.given)

    assert outcome.state.phase is row.phase
    assert without_logs(outcome.effects) == row.effects
    for label, expected in row.parties.items():
        assert outcome.state.get_party(label).state is expected, label
    if row.taker is not None:
        assert outcome.state.taker == row.taker


EVENT_ROWS = [
    row for row in ALL_ROWS if not isinstance(row.values[0].given, (*COMMANDS, OperationFailed))
]


@pytest.mark.parametrize("row", EVENT_ROWS)
def test_the_same_callback_twice_changes_nothing_the_second_time(row: Row) -> None:
    once = step(named(row.start), row.given).state

    again = step(once, row.given)

    assert again == Outcome(once, ())


@pytest.mark.parametrize("row", [r for r in ALL_ROWS if isinstance(r.values[0].given, COMMANDS)])
def test_every_command_is_logged_with_who_and_the_outcome(row: Row) -> None:
    given = row.given
    outcome = step(named(row.start), given)

    first = outcome.effects[0]
    assert isinstance(first, LogEntry)
    assert (first.what, first.who) == (given.what, given.by)
    assert first.outcome


@pytest.mark.parametrize("row", ALL_ROWS)
def test_every_change_is_logged_and_a_callback_without_news_is_silent(row: Row) -> None:
    start = named(row.start)
    outcome = step(start, row.given)

    changed = outcome.state.roster != start.roster or outcome.state.phase != start.phase
    logged = any(isinstance(effect, LogEntry) for effect in outcome.effects)
    assert logged == (changed or isinstance(row.given, COMMANDS))


# -- refusals -----------------------------------------------------------------------------

REFUSALS = [
    ("talking", CompleteTransfer("7"), "cannot complete a transfer: nobody is being consulted"),
    ("waiting", CompleteTransfer("7"), "cannot complete a transfer: nobody is being consulted"),
    ("talking", CancelTransfer("7"), "cannot cancel a transfer: nobody is being consulted"),
    (
        "consult_ringing",
        CompleteTransfer("7"),
        "cannot complete a transfer: Housing bureau has not answered yet",
    ),
    (
        "cold_ringing",
        CancelTransfer("7"),
        "cannot cancel a transfer: the caller is being transferred",
    ),
    (
        "waiting",
        Hold("7"),
        "cannot put a party on hold: the caller is still waiting for a call-taker",
    ),
    ("ringing", Hold("7"), "cannot put a party on hold: the call-taker has not answered yet"),
    ("on_hold", Hold("7"), "cannot put a party on hold: the caller is already on hold"),
    ("talking", Resume("7"), "cannot take a party off hold: the caller is not on hold"),
    (
        "consult_ringing",
        Resume("7"),
        "cannot take a party off hold: a consultation is in progress: complete or cancel it first",
    ),
    ("three_way", Hold("7", "taker-7"), "cannot put a party on hold: the call-taker cannot be"),
    ("party_ringing", Hold("7", "party-1"), "Housing bureau has not answered yet"),
    (
        "party_1_left",
        Hold("7", "party-1"),
        "cannot put a party on hold: Housing bureau has already left the call",
    ),
    ("transferred", Hold("7"), "cannot put a party on hold: no call-taker is on the call"),
    (
        "consult_ringing",
        StartWarmTransfer("7", WATER),
        "cannot start a warm transfer: a consultation is in progress",
    ),
    (
        "three_way",
        StartWarmTransfer("7", WATER),
        "cannot start a warm transfer: Housing bureau is on the call: remove them first",
    ),
    (
        "three_way",
        ColdTransfer("7", WATER),
        "cannot transfer the call: Housing bureau is on the call: remove them first",
    ),
    ("talking", AddParty("7", Target("")), "cannot add a party: there is no number to call"),
    (
        "talking",
        AddParty("7", Target("+868916000003", staff_id="bad id")),
        "cannot add a party: 'bad id' is not a staff id",
    ),
    ("consult_ringing", AddParty("7", WATER), "cannot add a party: a consultation is in progress"),
    (
        "three_way",
        RemoveParty("7", CITIZEN),
        "cannot remove a party: the caller cannot be removed: end the call instead",
    ),
    (
        "three_way",
        RemoveParty("7", "taker-7"),
        "cannot remove a party: the call-taker leaves by transferring or ending the call",
    ),
    (
        "party_1_left",
        RemoveParty("7", "party-1"),
        "cannot remove a party: Housing bureau has already left the call",
    ),
    (
        "talking",
        RemoveParty("7", "party-9"),
        "cannot remove a party: there is no participant 'party-9' on this call",
    ),
    (
        "line_joined",
        EmergencyTransfer("7", "police", POLICE),
        "cannot transfer to the emergency line: the police line is already on the call",
    ),
    (
        "talking",
        EmergencyTransfer("7", "po lice", POLICE),
        "cannot transfer to the emergency line: there is no number for the 'po lice' line",
    ),
    ("talking", EmergencyTransfer("7", "fire", ""), "there is no number for the 'fire' line"),
    (
        "talking",
        ConfirmHandoff("7", "110 operator", AT),
        "cannot confirm the hand-off: no emergency line was called",
    ),
    (
        "line_ringing",
        ConfirmHandoff("7", "110 operator", AT),
        "cannot confirm the hand-off: the police line has not answered yet",
    ),
    (
        "handed_off",
        ConfirmHandoff("7", "110 operator", AT),
        "cannot confirm the hand-off: the police line's hand-off was already confirmed by 7",
    ),
    (
        "line_joined",
        ConfirmHandoff("7", "  ", AT),
        "cannot confirm the hand-off: say who on the emergency side took the call over",
    ),
    ("ended", EndCall("7"), "cannot end the call: the call has ended"),
    ("ended", Hold("7"), "cannot put a party on hold: the call has ended"),
    ("waiting", EndCall("7"), "cannot end the call: the caller is still waiting for a call-taker"),
    (
        "talking",
        WrapUp("7"),
        "cannot wrap up: you are still on the call: transfer it or end it first",
    ),
    ("ended", WrapUp("8"), "cannot wrap up: you were not on this call"),
    ("wrapped_up", WrapUp("7"), "cannot wrap up: you are already wrapping up this call"),
    (
        "talking",
        RingTaker("routing", OTHER_TAKER),
        "cannot ring a call-taker: Zhang Wei is already on the call",
    ),
    (
        "waiting",
        RingTaker("routing", HOUSING),
        "cannot ring a call-taker: a call-taker needs a staff id",
    ),
    ("cold_ringing", RingTaker("routing", TAKER), "the caller is being transferred"),
]


@pytest.mark.parametrize(
    ("start", "command", "message"),
    [pytest.param(*refusal, id=f"{refusal[0]}+{refusal[1].what}") for refusal in REFUSALS],
)
def test_an_illegal_command_is_refused_with_a_clear_message(
    start: str, command: Command, message: str
) -> None:
    with pytest.raises(Refusal) as refused:
        FLOW.command(named(start), command)

    assert message in str(refused.value)
    assert refused.value.what == command.what


def test_a_call_has_at_most_the_configured_number_of_added_parties() -> None:
    strict = ConferenceFlow(ConferencePolicy(max_added_parties=2))

    with pytest.raises(Refusal, match=r"already has 2 added parties \(at most 2\)"):
        strict.command(named("four_party"), AddParty("7", Target("+868916000003", "Police")))


def test_something_that_is_not_a_command_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        FLOW.command(named("talking"), joined("taker-7"))  # type: ignore[arg-type]


# -- the rules every path keeps -----------------------------------------------------------


def test_no_leg_the_machine_creates_can_end_the_conference_or_wait_for_music() -> None:
    """Only the citizen's exit ends the room; every other leg starts it when it joins."""
    for role, (start, end, _early_media) in LEG_SETTINGS.items():
        assert (start, end) == (True, False), role
    assert Role.CITIZEN not in LEG_SETTINGS  # the citizen joins by TwiML, end-on-exit


@pytest.mark.parametrize("row", ALL_ROWS)
def test_hold_is_always_one_participant_never_the_room(row: Row) -> None:
    outcome = step(named(row.start), row.given)

    for effect in outcome.effects:
        if isinstance(effect, UpdateParticipant):
            assert outcome.state.find_party(effect.label) is not None
        if isinstance(row.given, Hold | Resume):
            assert not isinstance(effect, EndConference | RemoveParticipant)


def test_ring_timeouts_come_from_the_policy() -> None:
    flow = ConferenceFlow(ConferencePolicy(taker_ring_seconds=12, party_ring_seconds=25))

    ringing = flow.command(named("waiting"), RingTaker("routing", TAKER))
    adding = flow.command(named("talking"), AddParty("7", HOUSING))

    assert [e.timeout_seconds for e in ringing.effects if isinstance(e, CreateParticipant)] == [12]
    assert [e.timeout_seconds for e in adding.effects if isinstance(e, CreateParticipant)] == [25]


def test_the_emergency_lane_rings_the_line_into_the_citizens_room_at_once() -> None:
    state, effects = FLOW.start_emergency(CALL, "police", POLICE, conference_sid=ROOM)

    assert state.phase is Phase.RINGING
    assert without_logs(effects) == (POLICE_LEG,)
    assert state.handoffs[0].line == "police"
    assert state.handoffs[0].requested_by == "front-door"
    assert not state.handoffs[0].is_confirmed


def test_the_emergency_lane_refuses_an_unknown_line() -> None:
    with pytest.raises(ValueError, match="not an emergency line"):
        FLOW.start_emergency(CALL, "", POLICE)


def test_the_hand_off_receipt_says_who_took_it_and_when() -> None:
    state, _ = FLOW.command(named("line_joined"), ConfirmHandoff("7", "110 operator 0231", AT))

    receipt = state.handoffs[-1]
    assert (receipt.line, receipt.confirmed_by, receipt.taken_by) == (
        "police",
        "7",
        "110 operator 0231",
    )
    assert receipt.confirmed_at == AT
    assert ConferenceState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_a_four_party_call_survives_parties_coming_and_going() -> None:
    """The citizen, the call-taker and two departments; one department is hung up, the
    call-taker leaves, the other department hangs up: the citizen goes back to the queue."""
    state = named("talking")
    for given in (
        AddParty("7", HOUSING),
        joined("party-1"),
        AddParty("7", WATER),
        joined("party-2"),
    ):
        state = step(state, given).state
    present = [party.label for party in state.roster if party.is_present]
    assert present == [CITIZEN, "taker-7", "party-1", "party-2"]

    state = step(state, RemoveParty("7", "party-2")).state
    state = step(state, ParticipantGone("party-2")).state  # the REST answer: already gone
    state = step(state, left("taker-7")).state
    assert state.phase is Phase.TALKING
    assert [party.label for party in state.roster if party.is_present] == [CITIZEN, "party-1"]

    state, effects = step(state, left("party-1"))
    assert state.phase is Phase.WAITING
    assert REQUEUE in effects


def test_a_requeued_caller_is_served_again_in_a_new_room() -> None:
    state = named("requeued")
    for given in (
        joined(CITIZEN, NEXT_ROOM),
        left(CITIZEN, ROOM),  # the old room's callbacks arrive late
        ConferenceEnded(conference_sid=ROOM),
        RingTaker("routing", OTHER_TAKER),
        joined("taker-8", NEXT_ROOM),
    ):
        state = step(state, given).state

    assert state.phase is Phase.TALKING
    assert state.conference_sid == NEXT_ROOM
    assert state.retired_conference_sids == (ROOM,)
    assert state.requeued == 1
    assert state.taker == "taker-8"


def test_the_citizens_call_sid_is_the_room() -> None:
    assert named("talking").room == CALL


def test_a_callback_names_the_leg_s_call() -> None:
    state, _ = FLOW.event(named("ringing"), ParticipantRinging("taker-7", call_sid="CA" + "7" * 32))
    _, effects = FLOW.event(state, left(CITIZEN))

    assert RemoveParticipant("taker-7", "CA" + "7" * 32) in effects


# -- serialisation ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_a_state_survives_a_round_trip_through_json(name: str) -> None:
    state = named(name)

    stored = json.dumps(state.to_dict())

    assert ConferenceState.from_dict(json.loads(stored)) == state


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty"),
        pytest.param({**named("talking").to_dict(), "version": 2}, id="future-version"),
        pytest.param({**named("talking").to_dict(), "phase": "dancing"}, id="unknown-phase"),
        pytest.param({**named("talking").to_dict(), "roster": []}, id="no-citizen"),
        pytest.param({**named("talking").to_dict(), "roster": [7]}, id="bad-party"),
        pytest.param({**named("talking").to_dict(), "call_sid": None}, id="bad-call-sid"),
    ],
)
def test_something_that_is_not_a_stored_state_is_refused(data: dict) -> None:
    with pytest.raises(ValueError, match="not a stored conference state"):
        ConferenceState.from_dict(data)


# -- random walks: whatever Twilio and the console do, the citizen is never dropped --------

FUZZ_TARGETS = (HOUSING, WATER, COLLEAGUE)


def _random_input(rng: random.Random, state: ConferenceState) -> Input:
    labels = [party.label for party in state.others()] or [CITIZEN]
    label = CITIZEN if rng.random() < 0.04 else rng.choice([*labels, "party-9"])
    rooms = ["", state.conference_sid or NEXT_ROOM, *state.retired_conference_sids]
    room = rng.choice(rooms)
    events: list[Input] = [
        ParticipantRinging(label),
        ParticipantJoined(label, conference_sid=room),
        ParticipantJoined(label, conference_sid=room),
        ParticipantLeft(label, conference_sid=room),
        ParticipantHeld(label, conference_sid=room),
        ParticipantResumed(label, conference_sid=room),
        ParticipantFailed(label, reason=rng.choice(list(FailReason))),
        ParticipantGone(label),
    ]
    if rng.random() < 0.03:
        events.append(ConferenceEnded(conference_sid=room))
    commands: list[Input] = [
        RingTaker("routing", rng.choice((TAKER, OTHER_TAKER))),
        Hold("7", rng.choice([CITIZEN, label])),
        Resume("7", rng.choice([CITIZEN, label])),
        StartWarmTransfer("7", rng.choice(FUZZ_TARGETS)),
        CompleteTransfer("7"),
        CancelTransfer("7"),
        ColdTransfer("7", rng.choice(FUZZ_TARGETS)),
        AddParty("7", rng.choice(FUZZ_TARGETS)),
        RemoveParty("7", label),
        EmergencyTransfer("7", rng.choice(("police", "fire")), POLICE),
        ConfirmHandoff("7", "operator", AT, stay=rng.random() < 0.5),
        WrapUp(rng.choice(("7", "8", "9"))),
    ]
    if rng.random() < 0.05:
        commands.append(EndCall("7"))
    return rng.choice(events if rng.random() < 0.6 else commands)


def _check_invariants(before: ConferenceState, given: Input, outcome: Outcome) -> None:
    state, effects = outcome
    assert ConferenceState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    for party in before.roster:
        if party.is_over:
            assert state.get_party(party.label).is_over, f"{party.label} came back"
    if any(isinstance(effect, EndConference) for effect in effects):
        ends = isinstance(given, EndCall) or getattr(given, "label", "") == CITIZEN
        assert ends, f"the room was closed on {given}"
    for effect in effects:
        if isinstance(effect, CreateParticipant):
            assert not effect.end_conference_on_exit
    others = state.others()
    if state.phase is Phase.ENDED:
        assert all(party.is_over for party in state.roster)
        return
    assert not state.citizen.is_over
    # Never alone in a started room with nobody coming: music, someone, or the queue.
    assert not state.started or any(p.is_present or p.is_pending for p in others)
    if state.phase in (Phase.CONSULTING, Phase.TRANSFERRING):
        assert state.citizen.state is PartyState.ON_HOLD
    if state.phase is Phase.TALKING:
        assert any(party.is_present for party in others)
    if state.taker:
        taker = state.get_party(state.taker)
        assert taker.role is Role.CALL_TAKER and not taker.is_over
    if state.target:
        assert not state.get_party(state.target).is_over


@pytest.mark.parametrize("seed", range(40))
def test_random_walks_keep_the_rules(seed: int) -> None:
    rng = random.Random(seed)
    for _walk in range(10):
        state = named(rng.choice(ALL_NAMES))
        for _ in range(30):
            given = _random_input(rng, state)
            try:
                outcome = step(state, given)
            except Refusal:
                continue
            _check_invariants(state, given, outcome)
            if not isinstance(given, COMMANDS):
                assert step(outcome.state, given) == Outcome(outcome.state, ())
            state = outcome.state
