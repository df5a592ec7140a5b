"""Routing's trigger from the console: a call-taker who becomes free (goes available, or
whose wrap-up ends) is offered the next waiting caller at once, not at the next sweep.

Called after the commit that freed them. A failure here is logged and never undoes the
state change: the worker's sweep offers the call a moment later anyway.
"""

from __future__ import annotations

import logging

from ivr.dispatch import dispatch_waiting_calls

log = logging.getLogger(__name__)


def dispatch_after_commit(staff_id: int) -> None:
    """Offer the next waiting caller to ``staff_id``, who has just become free."""
    try:
        dispatch_waiting_calls(freed_staff_id=staff_id)
    except Exception:
        log.exception("dispatching the waiting calls failed; the sweep will try again")
