"""A caller's place in line, counted in the database for the wait room, and the head of
the queue routing reads first, follow routing's one order (``routing.queue_order``):
emergencies first, then arrival, then the call SID; callers who are not waiting have none."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from routing.queue_order import position_in_queue, queue_order
from tickets import calls
from tickets.db import utcnow
from tickets.models import Call, CallDirection, CallStatus, ConferenceRoom

START = utcnow().replace(microsecond=0)


def add_call(
    db: Session,
    sid: str,
    *,
    queued_after: int | None,
    emergency: bool = False,
    left: bool = False,
    ended: bool = False,
    room_phase: str | None = None,
) -> None:
    queued_at = None if queued_after is None else START + timedelta(seconds=queued_after)
    db.add(
        Call(
            call_sid=sid,
            direction=CallDirection.INBOUND,
            caller_kind="mobile",
            from_number="+8613900000000",
            status=CallStatus.IN_PROGRESS,
            queued_at=queued_at,
            queue_left_at=queued_at if left else None,
            ended_at=queued_at if ended else None,
            emergency_line="119" if emergency else None,
        )
    )
    if room_phase is not None:
        db.add(ConferenceRoom(call_sid=sid, phase=room_phase, state={}, failed_rings=[]))


def places(db: Session, sids: list[str]) -> dict[str, int | None]:
    found = {sid: calls.place_in_line(session=db, call_sid=sid) for sid in sids}
    return {sid: place.position if place else None for sid, place in found.items()}


def test_emergencies_first_then_arrival_then_the_call_sid(db: Session) -> None:
    add_call(db, "CA03", queued_after=5)
    add_call(db, "CA01", queued_after=10, emergency=True)
    add_call(db, "CA02", queued_after=5)  # same second as CA03: the SID decides
    add_call(db, "CA04", queued_after=1, emergency=True)
    add_call(db, "CA05", queued_after=0)
    db.commit()

    assert places(db, ["CA04", "CA01", "CA05", "CA02", "CA03"]) == {
        "CA04": 1,
        "CA01": 2,
        "CA05": 3,
        "CA02": 4,
        "CA03": 5,
    }
    place = calls.place_in_line(session=db, call_sid="CA02")
    assert place is not None and place.queued_at == START + timedelta(seconds=5)


def test_who_is_not_waiting_has_no_place_and_takes_none(db: Session) -> None:
    add_call(db, "CA10", queued_after=0, left=True)  # a call-taker answered
    add_call(db, "CA11", queued_after=1, ended=True)  # hung up
    add_call(db, "CA12", queued_after=None)  # never queued
    add_call(db, "CA13", queued_after=2, room_phase="ringing")  # a call-taker is rung
    add_call(db, "CA14", queued_after=3, room_phase="waiting")
    add_call(db, "CA15", queued_after=4)
    db.commit()

    assert places(db, ["CA10", "CA11", "CA12", "CA13", "CA14", "CA15", "CA99"]) == {
        "CA10": None,
        "CA11": None,
        "CA12": None,
        "CA13": None,
        "CA14": 1,
        "CA15": 2,
        "CA99": None,  # no such call
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_places_as_routing_orders_a_mixed_queue(db: Session, seed: int) -> None:
    rng = random.Random(seed)
    sids = [f"CA{seed}{n:03d}" for n in range(60)]
    for sid in rng.sample(sids, len(sids)):
        add_call(
            db,
            sid,
            queued_after=rng.choice([None, *range(12)]),  # many ties on the second
            emergency=rng.random() < 0.15,
            left=rng.random() < 0.15,
            ended=rng.random() < 0.1,
            room_phase=rng.choice([None, None, "waiting", "ringing", "connected"]),
        )
    db.commit()

    waiting = calls.list_waiting_callers(session=db)
    assert len(waiting) > 10
    assert places(db, sids) == {sid: position_in_queue(waiting, sid) for sid in sids}
    for first in (1, 5, len(waiting), len(waiting) + 3):  # the head routing reads first
        assert calls.list_waiting_callers(session=db, first=first) == queue_order(waiting)[:first]
