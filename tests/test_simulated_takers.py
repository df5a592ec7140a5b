"""Whole calls through the local simulator, with the call-takers' phones played as Twilio
would: answered, not answered, busy, or hung up during the call."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.simulator import CallSimulator, WsgiTransport
from ivr.simulator_phones import Phone, SimulatedPhones
from tests.conftest import AUTH_TOKEN, PUBLIC_BASE_URL
from tests.support.conference_calls import on_duty, state_of
from tickets.models import Call, CallEvent, CallTakerState
from webapp.cli import main

TENZIN, WANG = "+8613900000001", "+8613900000003"


def _simulator(app, gateway, **phones: Phone) -> tuple[CallSimulator, SimulatedPhones]:
    simulated = SimulatedPhones(gateway, {number: phone for number, phone in phones.items()})
    simulator = CallSimulator(
        WsgiTransport(app),
        auth_token=AUTH_TOKEN,
        public_base_url=PUBLIC_BASE_URL,
        phones=simulated,
        max_steps=80,
    )
    return simulator, simulated


def _kinds(db, call_sid: str) -> list[str]:
    db.expire_all()
    return list(db.scalars(select(CallEvent.kind).where(CallEvent.call_sid == call_sid)))


def test_a_tibetan_caller_is_put_through_to_the_tibetan_speaking_call_taker(app, gateway, db):
    wang = on_duty(db, "wang", languages=("zh",), phone_number=WANG)
    tenzin = on_duty(db, "tenzin", languages=("zh", "bo"), phone_number=TENZIN)
    simulator, _ = _simulator(app, gateway)

    transcript = simulator.call("+8613800000001", "+868916312345", ["2", "1"])

    assert transcript.ok, transcript.errors
    assert [added.to for added in gateway.added] == [TENZIN]
    assert any("answers and joins" in line for line in transcript.heard)
    assert any(kind.startswith("conference:") for kind in _kinds(db, transcript.call_sid))
    assert state_of(db, wang) is CallTakerState.AVAILABLE
    assert state_of(db, tenzin) in (CallTakerState.WRAP_UP, CallTakerState.AVAILABLE)


@pytest.mark.parametrize("first", [Phone.NO_ANSWER, Phone.BUSY, Phone.FAIL])
def test_a_call_taker_who_does_not_take_the_call_is_away_and_the_next_one_rings(
    app, gateway, db, first
):
    tenzin = on_duty(db, "tenzin", languages=("zh", "bo"), phone_number=TENZIN)
    wang = on_duty(db, "wang", languages=("zh",), phone_number=WANG)
    simulator, _ = _simulator(app, gateway, **{TENZIN: first})

    transcript = simulator.call("+8613800000001", "+868916312345", ["2", "1"])

    assert transcript.ok, transcript.errors
    assert [added.to for added in gateway.added] == [TENZIN, WANG]
    assert state_of(db, tenzin) is CallTakerState.AWAY
    assert state_of(db, wang) in (CallTakerState.WRAP_UP, CallTakerState.AVAILABLE)


def test_with_nobody_on_duty_the_caller_waits_and_hears_the_hold_music(app, gateway, db):
    simulator, _ = _simulator(app, gateway)
    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "1"])
    assert transcript.ok, transcript.errors
    assert gateway.added == []
    assert any(line.startswith("♪") for line in transcript.heard)


def test_a_call_taker_who_hangs_up_does_not_drop_the_caller(app, gateway, db):
    on_duty(db, "tenzin", languages=("zh",), phone_number=TENZIN)
    simulator, _ = _simulator(app, gateway, **{TENZIN: Phone.HANG_UP})

    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "1"])

    assert transcript.ok, transcript.errors
    # The caller is taken back to the queue (redirected out of the empty room) or keeps
    # waiting in it; they never just lose the line.
    assert not any("the line hangs up" in line for line in transcript.heard)


def test_hotline_call_in_process_plays_the_call_takers_phones(app, gateway, db):
    on_duty(db, "tenzin", languages=("zh",), phone_number=TENZIN)
    on_duty(db, "wang", languages=("zh",), phone_number=WANG)
    runner = app.test_cli_runner()

    result = runner.invoke(main, ["call", "--press", "1,1", "--phone", f"{TENZIN}=busy"])

    assert result.exit_code == 0, result.output
    assert f"({TENZIN}) busy" in result.output
    assert f"({WANG}) answers and joins" in result.output


def test_hotline_call_refuses_an_unknown_phone_behaviour(app):
    result = app.test_cli_runner().invoke(main, ["call", "--phone", "+8613900000001=maybe"])
    assert result.exit_code == 2
    assert "the behaviour is one of answer" in result.output


def _console(app, command_for):  # type: ignore[no-untyped-def]
    """A console action for ``while_connected``: run the command on the caller's call."""
    from ivr.conference_edge import run_command

    def act(call_sid: str) -> None:
        with app.app_context():
            run_command(call_sid, command_for())

    return act


def test_a_warm_transfer_completes_through_the_simulator(app, gateway, db):
    from callflows.conference_messages import CompleteTransfer, StartWarmTransfer, Target

    tenzin = on_duty(db, "tenzin", languages=("zh",), phone_number=TENZIN)
    department = "+8689160000099"
    by = f"staff:{tenzin.id}"
    simulator, phones = _simulator(app, gateway)
    phones.while_connected = (
        _console(app, lambda: StartWarmTransfer(by, Target(department, name="Housing bureau"))),
        _console(app, lambda: CompleteTransfer(by)),
    )

    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "1"])

    assert transcript.ok, transcript.errors
    assert [added.to for added in gateway.added] == [TENZIN, department]
    assert [(held.label, held.hold) for held in gateway.held] == [
        ("citizen", True),
        ("citizen", False),
    ]
    assert [removed.label for removed in gateway.removed] == [gateway.added[0].label]
    kinds = _kinds(db, transcript.call_sid)
    assert "conference:warm-transfer" in kinds and "conference:complete-transfer" in kinds


def test_a_consult_that_rings_out_brings_the_caller_back_to_the_call_taker(app, gateway, db):
    from callflows.conference_messages import StartWarmTransfer, Target

    tenzin = on_duty(db, "tenzin", languages=("zh",), phone_number=TENZIN)
    department = "+8689160000099"
    simulator, phones = _simulator(app, gateway, **{department: Phone.NO_ANSWER})
    phones.while_connected = (
        _console(app, lambda: StartWarmTransfer(f"staff:{tenzin.id}", Target(department))),
    )

    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "1"])

    assert transcript.ok, transcript.errors
    assert [(held.label, held.hold) for held in gateway.held] == [
        ("citizen", True),
        ("citizen", False),
    ]
    assert gateway.removed == []  # the call-taker stays with the caller


def test_a_caller_who_hangs_up_while_the_call_taker_rings_frees_them(app, gateway, db):
    tenzin = on_duty(db, "tenzin", languages=("zh",), phone_number=TENZIN)
    simulator, _ = _simulator(app, gateway, **{TENZIN: Phone.RING})

    transcript = simulator.call("+8613800000001", "+868916312345", ["1", "1"])

    assert transcript.ok, transcript.errors
    assert any("stops ringing" in line for line in transcript.heard)
    assert state_of(db, tenzin) is CallTakerState.AVAILABLE  # not away: nobody's fault
    db.expire_all()
    call = db.scalar(select(Call).where(Call.call_sid == transcript.call_sid))
    assert call.abandoned_at is not None
