"""Routing's hot path in the database: the claim, the rows routing reads, the moves.

A call-taker who goes available is rung after two reads (the call-takers on duty, the
queue) and one short transaction: the claim (available → ringing and its history row),
the assignment on the call's history and the room's step. These tests hold the claim to
the rules of ``change_state``, the plain rows to ``list_call_takers``, and the path to its
statement budget, so that a change which adds work to it is seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from ivr import dispatch
from ivr.config import voice_config
from routing.assignment import Assignment, Reason
from tests.support.conference_calls import (
    citizen_joins,
    new_conference_sid,
    on_duty,
    profile_of,
    queue_caller,
    state_of,
)
from tests.support.staff import TEST_ACTOR, add_staff
from tickets import conferences
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import CallTakerState, CallTakerStateChange, Role, Staff

S = CallTakerState
CALL = "CA" + "5" * 32


def put_in(db: Session, person: Staff, state: CallTakerState, call_sid: str | None = None) -> None:
    """Force a starting state (not a move anyone could make)."""
    profile = profile_of(db, person)
    profile.state = state
    profile.call_sid = call_sid
    profile.away_reason = "test" if state is S.AWAY else None
    profile.wrap_up_until = utcnow() + timedelta(seconds=30) if state is S.WRAP_UP else None
    db.commit()


def changes_of(db: Session, person: Staff) -> list[CallTakerStateChange]:
    db.expire_all()
    return list(
        db.scalars(
            select(CallTakerStateChange)
            .where(CallTakerStateChange.staff_id == person.id)
            .order_by(CallTakerStateChange.id)
        )
    )


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile (COMMIT and ROLLBACK are not)."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split())[:80])

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


# -- the claim --------------------------------------------------------------------------------


def test_a_claim_is_the_move_change_state_makes(db: Session) -> None:
    claimed, moved = on_duty(db, "wang"), on_duty(db, "li", phone_number="+8613900000002")
    idle = {p.id: profile_of(db, p).idle_since for p in (claimed, moved)}
    now, reason = utcnow(), "rung for a caller: language"

    assert staff_store.ring_if_available(
        session=db, staff_id=claimed.id, call_sid=CALL, actor="routing", reason=reason, now=now
    )
    staff_store.change_state(
        db.get(Staff, moved.id),  # type: ignore[arg-type]
        S.RINGING,
        session=db,
        actor="routing",
        reason=reason,
        call_sid=CALL,
        now=now,
    )
    db.commit()

    fields = ("state", "call_sid", "state_changed_at", "away_reason", "wrap_up_until")
    a, b = profile_of(db, claimed), profile_of(db, moved)
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert a.state is S.RINGING and a.call_sid == CALL
    assert (a.idle_since, b.idle_since) == (idle[claimed.id], idle[moved.id])  # kept
    row, same = changes_of(db, claimed)[-1], changes_of(db, moved)[-1]
    keys = ("at", "actor", "from_state", "to_state", "reason", "call_sid")
    assert [getattr(row, k) for k in keys] == [getattr(same, k) for k in keys]
    assert (row.from_state, row.to_state) == (S.AVAILABLE, S.RINGING)


@pytest.mark.parametrize("state", [S.OFFLINE, S.RINGING, S.ON_CALL, S.WRAP_UP, S.AWAY])
def test_only_an_available_call_taker_is_claimed(db: Session, state: CallTakerState) -> None:
    wang = on_duty(db, "wang")
    put_in(db, wang, state, call_sid="CA-other" if state in (S.RINGING, S.ON_CALL) else None)
    before = len(changes_of(db, wang))

    assert not staff_store.ring_if_available(
        session=db, staff_id=wang.id, call_sid=CALL, actor="system:routing"
    )
    db.commit()

    assert state_of(db, wang) is state
    assert len(changes_of(db, wang)) == before


def test_a_closed_account_or_a_lost_role_is_never_claimed(db: Session) -> None:
    """Closing an account sends it offline; the claim checks the account all the same."""
    closed, demoted = on_duty(db, "wang"), on_duty(db, "li", phone_number="+8613900000002")
    db.get(Staff, closed.id).is_active = False  # type: ignore[union-attr]
    person = db.get(Staff, demoted.id)
    assert person is not None
    person.roles.clear()
    db.commit()

    for who in (closed, demoted):
        assert state_of(db, who) is S.AVAILABLE  # forced here; tickets.staff never leaves it
        assert not staff_store.ring_if_available(
            session=db, staff_id=who.id, call_sid=CALL, actor="system:routing"
        )


def test_of_two_claims_for_one_call_taker_only_the_first_wins(db: Session) -> None:
    wang = on_duty(db, "wang")
    first = staff_store.ring_if_available(
        session=db, staff_id=wang.id, call_sid=CALL, actor="system:routing"
    )
    second = staff_store.ring_if_available(
        session=db, staff_id=wang.id, call_sid="CA" + "6" * 32, actor="system:routing"
    )
    db.commit()

    assert (first, second) == (True, False)
    assert profile_of(db, wang).call_sid == CALL
    assert [c.to_state for c in changes_of(db, wang)].count(S.RINGING) == 1


def test_a_claim_refreshes_a_profile_the_session_already_holds(db: Session) -> None:
    wang = on_duty(db, "wang")
    profile = profile_of(db, wang)
    assert profile.state is S.AVAILABLE

    staff_store.ring_if_available(session=db, staff_id=wang.id, call_sid=CALL, actor="x")

    assert profile.state is S.RINGING and profile.call_sid == CALL


# -- what routing reads ------------------------------------------------------------------------


def test_routing_rows_are_the_call_takers_list_call_takers_gives(db: Session) -> None:
    people = [on_duty(db, f"taker{n}", phone_number=f"+86139000000{n:02d}") for n in range(6)]
    put_in(db, people[1], S.ON_CALL, call_sid=CALL)
    put_in(db, people[2], S.WRAP_UP, call_sid=CALL)
    put_in(db, people[3], S.AWAY)
    db.get(Staff, people[4].id).is_active = False  # type: ignore[union-attr]
    add_staff(db, "boss", Role.FLOOR_MANAGER, phone_number="+8613900000099")  # no call-taker
    db.commit()
    on_duty_states = (S.AVAILABLE, S.RINGING, S.ON_CALL, S.WRAP_UP)

    rows = staff_store.call_takers_for_routing(states=on_duty_states, session=db)
    profiles = staff_store.list_call_takers(states=on_duty_states, session=db)

    fields = ("staff_id", "languages", "skills", "state", "idle_since", "state_changed_at")
    assert [[getattr(r, f) for f in fields] for r in rows] == [
        [getattr(p, f) for f in fields] for p in profiles
    ]
    assert {r.staff_id for r in rows} == {people[n].id for n in (0, 1, 2, 5)}
    first = next(r for r in rows if r.staff_id == people[0].id)
    assert (first.phone_number, first.client_identity, first.display_name) == (
        "+8613900000000",
        None,
        "Taker0",
    )
    available = staff_store.call_takers_for_routing(states=(S.AVAILABLE,), session=db)
    assert {r.staff_id for r in available} == {people[0].id, people[5].id}


def test_routing_rows_end_a_wrap_up_that_is_over(db: Session) -> None:
    wang = on_duty(db, "wang")
    put_in(db, wang, S.WRAP_UP, call_sid=CALL)
    profile = profile_of(db, wang)
    profile.wrap_up_until = utcnow() - timedelta(seconds=1)
    db.commit()

    [row] = staff_store.call_takers_for_routing(states=(S.AVAILABLE,), session=db)
    db.commit()

    assert row.staff_id == wang.id and row.state is S.AVAILABLE
    assert state_of(db, wang) is S.AVAILABLE
    assert changes_of(db, wang)[-1].actor == "system:wrap-up"


# -- the moves of a call -----------------------------------------------------------------------


def test_a_move_reads_the_row_and_the_account_in_one_statement(db: Session, engine: Engine) -> None:
    wang = on_duty(db, "wang").id
    staff_store.ring_if_available(session=db, staff_id=wang, call_sid=CALL, actor="x")
    db.commit()
    db.expunge_all()  # nothing loaded: what a conference callback starts from

    with statements(engine) as seen:
        moved = conferences.move_call_taker(
            session=db,
            staff_id=wang,
            call_sid=CALL,
            from_states=frozenset({S.RINGING}),
            to_state=S.ON_CALL,
            actor="system:conference",
            reason="answered",
        )
        db.commit()

    assert moved is not None and moved.state is S.ON_CALL
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE", "INSERT"], seen


def test_a_move_for_another_call_or_a_closed_account_changes_nothing(db: Session) -> None:
    wang = on_duty(db, "wang")
    staff_store.ring_if_available(session=db, staff_id=wang.id, call_sid=CALL, actor="x")
    db.commit()

    def answered(call_sid: str) -> object:
        return conferences.move_call_taker(
            session=db,
            staff_id=wang.id,
            call_sid=call_sid,
            from_states=frozenset({S.RINGING}),
            to_state=S.ON_CALL,
            actor="system:conference",
        )

    assert answered("CA" + "6" * 32) is None  # a late callback about another call
    db.get(Staff, wang.id).is_active = False  # type: ignore[union-attr]
    db.commit()
    assert answered(CALL) is None  # StaffError, logged: the account is closed
    assert state_of(db, wang) is S.RINGING
    assert (
        conferences.move_call_taker(
            session=db,
            staff_id=999_999,
            call_sid=CALL,
            from_states=frozenset({S.RINGING}),
            to_state=S.ON_CALL,
            actor="x",
        )
        is None
    )


def test_may_ring_reads_whether_a_claim_could_still_succeed(twilio, db: Session, app: Flask):
    wang = on_duty(db, "wang")
    sid = queue_caller(twilio)  # rings wang at once: the room is no longer waiting
    li = on_duty(db, "li", phone_number="+8613900000002")
    other = queue_caller(twilio)  # rings li
    put_in(db, li, S.AVAILABLE)  # as if li's ring had been withdrawn

    assert not conferences.may_ring(session=db, staff_id=wang.id, call_sid=other)  # wang rings
    assert not conferences.may_ring(session=db, staff_id=li.id, call_sid=sid)  # sid is served
    assert conferences.may_ring(session=db, staff_id=li.id, call_sid="CA" + "7" * 32)  # no room


# -- the path, end to end ----------------------------------------------------------------------


def test_a_freed_call_taker_is_rung_within_the_statement_budget(
    twilio, db: Session, app: Flask, gateway
) -> None:
    """From "available" to the participant create: two reads, then the claim's
    transaction (claim, history, assignment, the room read, its step logged and saved).
    Before this work it took 15 statements; keep it at 9 at most."""
    for n in range(5):  # waiting in their rooms, as callers are when someone goes available
        sid = queue_caller(twilio, from_number=f"+86138000001{n:02d}")
        citizen_joins(twilio, sid, new_conference_sid())
    wang = on_duty(db, "wang")
    engine = app.extensions["hotline.engine"]
    at_create: list[int] = []
    add = gateway.add_participant

    def noted(*args, **kwargs):
        at_create.append(len(seen))
        return add(*args, **kwargs)

    gateway.add_participant = noted
    with app.app_context(), statements(engine) as seen:
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=wang.id)

    assert [a.staff_id for a in rung] == [wang.id]
    assert len(at_create) == 1
    assert at_create[0] <= 9, seen[: at_create[0]]
    writes_before_create = [s for s in seen[: at_create[0]] if not s.startswith("SELECT")]
    assert writes_before_create[0].startswith(("UPDATE call_takers", "WITH claimed"))


def test_a_stale_decision_for_another_call_taker_costs_no_claim(
    twilio, db: Session, app: Flask, gateway, monkeypatch
) -> None:
    """The freed call-taker's ring comes first; the others are read before they are
    claimed, so a call-taker another pass has rung meanwhile costs no write."""
    first = queue_caller(twilio, from_number="+8613800000201")
    second = queue_caller(twilio, from_number="+8613800000202")
    wang, li = on_duty(db, "wang"), on_duty(db, "li", phone_number="+8613900000002")
    put_in(db, li, S.RINGING, call_sid="CA" + "8" * 32)  # rung by another pass meanwhile
    stale = [
        Assignment(first, wang.id, (Reason.LANGUAGE,)),
        Assignment(second, li.id, (Reason.LANGUAGE,)),
    ]
    monkeypatch.setattr(dispatch, "assign", lambda *args, **kwargs: stale)
    engine = app.extensions["hotline.engine"]

    with app.app_context(), statements(engine) as seen:
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=wang.id)

    assert rung == stale[:1]
    claims = [s for s in seen if s.startswith(("UPDATE call_takers", "WITH claimed"))]
    assert len(claims) == 1
    assert [leg.label for leg in gateway.added] == [f"taker-{wang.id}"]


def test_a_ring_without_a_target_read_first_looks_it_up(twilio, db: Session, app: Flask, gateway):
    sid = queue_caller(twilio)
    emma = on_duty(db, "emma", phone_number=None, client_identity="emma")
    with app.app_context():
        assert dispatch.ring(voice_config(), Assignment(sid, emma.id, (Reason.LANGUAGE,)))
    assert [leg.to for leg in gateway.added] == ["client:emma"]
    assert state_of(db, emma) is S.RINGING


def test_nobody_is_claimed_for_a_call_taker_who_cannot_be_reached(twilio, db, app, gateway):
    sid = queue_caller(twilio)
    person = add_staff(db, "mute", phone_number="+8613900000005")
    staff_store.change_state(person, S.AVAILABLE, session=db, actor=TEST_ACTOR)
    profile = profile_of(db, person)
    profile.phone_number = None  # no phone and no softphone
    db.commit()
    with app.app_context():
        assert not dispatch.ring(voice_config(), Assignment(sid, person.id, (Reason.LANGUAGE,)))
    assert gateway.added == []
    assert state_of(db, person) is S.AVAILABLE


def test_a_freed_call_taker_whose_caller_was_taken_gets_the_next_without_a_new_read(
    twilio, db: Session, app: Flask, gateway, monkeypatch
) -> None:
    """Another pass rings someone else for the caller chosen for them between the reads
    and the claim: the next caller is chosen on the same reads (the queue is not read
    again), checked, and rung."""
    first = queue_caller(twilio, from_number="+8613800000301")
    second = queue_caller(twilio, from_number="+8613800000302")
    wang = on_duty(db, "wang")
    li = on_duty(db, "li", phone_number="+8613900000002")
    put_in(db, li, S.AWAY)
    decide, read = dispatch.assign, dispatch.calls.list_waiting_callers
    reads: list[int] = []

    def another_pass_meanwhile(callers, takers, now, policy):  # type: ignore[no-untyped-def]
        if not reads or len(reads) > 1 or len(callers) < 2:
            return decide(callers, takers, now, policy)
        reads.append(0)  # once: li comes back and is rung for the first caller
        staff_store.change_state(li, S.AVAILABLE, session=db, actor=TEST_ACTOR)
        db.commit()
        assert dispatch.ring(voice_config(), Assignment(first, li.id, (Reason.LANGUAGE,)))
        return decide(callers, takers, now, policy)  # on the reads from before

    def counted(**kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return read(**kwargs)

    monkeypatch.setattr(dispatch, "assign", another_pass_meanwhile)
    monkeypatch.setattr(dispatch.calls, "list_waiting_callers", counted)
    with app.app_context():
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=wang.id)

    assert [(a.call_sid, a.staff_id) for a in rung] == [(second, wang.id)]
    assert reads.count(1) == 1  # the queue was read once
    assert [leg.label for leg in gateway.added] == [f"taker-{li.id}", f"taker-{wang.id}"]
    assert state_of(db, wang) is S.RINGING


def reads_of_the_queue(monkeypatch) -> list[int | None]:  # type: ignore[no-untyped-def]
    """How many callers each read of the queue asked for (None: all of them)."""
    read = dispatch.calls.list_waiting_callers
    asked: list[int | None] = []

    def counted(*, session, first=None):  # type: ignore[no-untyped-def]
        asked.append(first)
        return read(session=session, first=first)

    monkeypatch.setattr(dispatch.calls, "list_waiting_callers", counted)
    return asked


def test_a_freed_call_taker_reads_only_the_head_of_a_long_queue(
    twilio, db: Session, app: Flask, gateway, monkeypatch
) -> None:
    monkeypatch.setattr(dispatch, "HEAD_PER_FREE_TAKER", 2)
    sids = [queue_caller(twilio, from_number=f"+86138000004{n:02d}") for n in range(5)]
    wang = on_duty(db, "wang")
    asked = reads_of_the_queue(monkeypatch)

    with app.app_context():
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=wang.id)

    assert [(a.call_sid, a.staff_id) for a in rung] == [(sids[0], wang.id)]
    assert asked == [2]  # one free call-taker: the first two callers, not five


def test_a_head_of_callers_waiting_for_another_language_reads_the_whole_queue(
    twilio, db: Session, app: Flask, gateway, monkeypatch
) -> None:
    """The head holds only Tibetan callers, still waiting for the Tibetan speaker (busy):
    the Mandarin speaker who is free gets the first Mandarin caller behind them."""
    monkeypatch.setattr(dispatch, "HEAD_PER_FREE_TAKER", 2)
    tibetan = [queue_caller(twilio, lang="bo", from_number=f"+86138000005{n}") for n in range(3)]
    mandarin = [queue_caller(twilio, from_number=f"+86138000006{n}") for n in range(2)]
    tenzin = on_duty(db, "tenzin", languages=("bo", "zh"), phone_number="+8613900000009")
    put_in(db, tenzin, S.ON_CALL, call_sid="CA" + "9" * 32)
    wang = on_duty(db, "wang")
    asked = reads_of_the_queue(monkeypatch)

    with app.app_context():
        rung = dispatch.dispatch_waiting_calls(freed_staff_id=wang.id)

    assert [(a.call_sid, a.staff_id) for a in rung] == [(mandarin[0], wang.id)]
    assert asked == [2, None]
    assert all(dispatch.calls.place_in_line(session=db, call_sid=sid) for sid in tibetan)
