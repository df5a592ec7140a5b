"""Routing decisions at a time to come: when a wrap-up ends, when a language wait is over.

Nothing else happens at those moments, so the worker is asked to decide then
(``VoiceConfig.schedule_dispatch``); the worker's minute sweep is the safety net. Within a
process, a time already asked for is not asked again (the drainer decides after every
batch, and would otherwise ask for the same second many times over).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ivr.config import VoiceConfig
from tickets.db import utcnow

log = logging.getLogger(__name__)
_asked: set[datetime] = set()


def wake_at(config: VoiceConfig, at: datetime) -> None:
    """Have a routing decision made at ``at`` (to the next whole second)."""
    if config.schedule_dispatch is None:
        return
    second = at.replace(microsecond=0) + (timedelta(seconds=1) if at.microsecond else timedelta())
    now = utcnow()
    _asked.difference_update({asked for asked in _asked if asked <= now})
    if second in _asked:
        return
    try:
        config.schedule_dispatch(second)
    except Exception:  # the worker's minute sweep decides all the same
        log.exception("could not schedule a routing decision at %s", second.isoformat())
        return
    _asked.add(second)
