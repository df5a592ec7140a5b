"""Routing's trigger from the console: a call-taker who becomes free (goes available, or
whose wrap-up ends) is offered the next waiting caller at once, not at the next sweep.

Going available and the ring that follows are one transaction
(``ivr.dispatch.free_and_ring``). A wrap-up that ends by itself is seen after its commit
(``dispatch_after_commit``). A routing failure is logged and never undoes the state
change: the worker's sweep offers the call a moment later anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from ivr.config import voice_config
from ivr.dispatch import dispatch_waiting_calls, free_and_ring
from tickets import staff as staff_store
from tickets.models import CallTakerState, Staff

log = logging.getLogger(__name__)


def go_available(staff: Staff, *, actor: str, wrap_up_seconds: int, now: datetime) -> None:
    """``staff`` goes available (dated ``now``, by ``actor``) and is rung for the next
    waiting caller in the same commit. ``tickets.staff.StaffError`` when they may not."""

    def become_free(session: Session) -> None:
        staff_store.change_state(
            staff,
            CallTakerState.AVAILABLE,
            session=session,
            actor=actor,
            reason="from the console",
            wrap_up_seconds=wrap_up_seconds,
            now=now,
        )

    free_and_ring(voice_config(), staff.id, become_free, now=now)


def dispatch_after_commit(staff_id: int) -> None:
    """Offer the next waiting caller to ``staff_id``, who has just become free."""
    try:
        dispatch_waiting_calls(freed_staff_id=staff_id)
    except Exception:
        log.exception("dispatching the waiting calls failed; the sweep will try again")
