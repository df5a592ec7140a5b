"""Claiming due surveys under a lease, so two workers never hold one survey.

``claim_due``: due rows (``scheduled`` and ``next_attempt_at`` passed: FRESH; or
``calling`` whose lease ran out: RECOVER) become ``calling`` under this sweep's lease,
committed before anything else. PostgreSQL locks them ``FOR UPDATE SKIP LOCKED``, then
updates them; SQLite runs one conditional UPDATE. The UPDATE repeats the "due" condition,
so two workers never hold one survey. Outside calling hours nothing FRESH is claimed: the
due rows move to the next opening of calling hours instead. ``release`` gives back the
claims a stopped sweep did not work on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tickets import survey_schedule
from tickets.models import Survey, SurveyStatus
from tickets.survey_policy import SurveyPlan

log = logging.getLogger(__name__)


class ClaimKind(StrEnum):
    """Why a survey was claimed, so what it needs."""

    FRESH = "fresh"  # was scheduled and due: place a call
    RECOVER = "recover"  # was calling, its lease ran out: look at its latest attempt


@dataclass(frozen=True, slots=True)
class Claim:
    """A survey this sweep holds under its lease."""

    survey_id: int
    kind: ClaimKind


def _fresh(now: datetime) -> Any:
    return and_(Survey.status == SurveyStatus.SCHEDULED, Survey.next_attempt_at <= now)


def _recover(now: datetime) -> Any:
    return and_(
        Survey.status == SurveyStatus.CALLING,
        or_(Survey.lease_until.is_(None), Survey.lease_until <= now),
    )


def claim_due(
    session: Session,
    *,
    now: datetime,
    owner: str,
    limit: int,
    lease: timedelta,
    plan: SurveyPlan,
    recover_limit: int | None = None,
    commit: bool = True,
) -> list[Claim]:
    """Claim up to ``limit`` due surveys (and up to ``recover_limit`` whose lease ran out)
    for ``owner`` and commit the claim; the RECOVER ones first, then the earliest due.
    Outside calling hours the due ones are moved to the next opening instead.
    ``commit=False``: the caller commits (with what it writes in the same transaction)."""
    claims: list[Claim] = []
    recovered = _claim(
        session, _recover(now), now, owner, lease, recover_limit if recover_limit else limit
    )
    claims += [Claim(survey_id, ClaimKind.RECOVER) for survey_id in recovered]
    if survey_schedule.is_inside(now, plan.rules, plan.calendar):
        fresh = _claim(session, _fresh(now), now, owner, lease, limit)
        claims += [Claim(survey_id, ClaimKind.FRESH) for survey_id in fresh]
    else:
        opening = survey_schedule.next_calling_moment(now, plan.rules, plan.calendar)
        moved = session.execute(
            update(Survey)
            .where(_fresh(now))
            .values(next_attempt_at=opening, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            log.info(
                "survey calls: outside calling hours, %d due survey(s) moved to %s",
                moved.rowcount,  # type: ignore[attr-defined]
                opening.isoformat(),
            )
    if commit:
        session.commit()
    if claims:
        log.info("survey calls: claimed %d survey(s) for %s", len(claims), owner)
    return claims


def _claim(
    session: Session, due: Any, now: datetime, owner: str, lease: timedelta, limit: int
) -> list[int]:
    if limit < 1:
        return []
    picked = select(Survey.id).where(due).order_by(Survey.next_attempt_at, Survey.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Lock first (rows another worker is claiming are skipped), then update; the
        # UPDATE repeats the condition, so a row claimed and committed since is left.
        chosen = list(session.scalars(picked.with_for_update(skip_locked=True)))
        if not chosen:
            return []
        targets: Any = Survey.id.in_(chosen)
    else:
        targets = Survey.id.in_(picked.scalar_subquery())  # SQLite: one atomic UPDATE
    claimed = session.execute(
        update(Survey)
        .where(targets, due)
        .values(
            status=SurveyStatus.CALLING,
            lease_owner=owner,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(Survey.id, Survey.next_attempt_at)
        .execution_options(synchronize_session=False)
    ).all()
    return [survey_id for survey_id, _ in sorted(claimed, key=lambda row: (row[1] or now, row[0]))]


def claimed_unplaced(session: Session, *, now: datetime, lease: timedelta) -> int:
    """Surveys some worker claimed and has not placed a call for yet: ``calling`` under a
    claim's lease (a placed call's lease is the longer ``call_watch``)."""
    return int(
        session.scalar(
            select(func.count(Survey.id)).where(
                Survey.status == SurveyStatus.CALLING,
                Survey.lease_until > now,
                Survey.lease_until <= now + lease,
            )
        )
        or 0
    )


def release(claims: Sequence[Claim], *, sessions: sessionmaker[Session], owner: str) -> int:
    """Give back claims not worked on (the sweep stopped): a FRESH one is scheduled again
    as it was, a RECOVER one is left for the next sweep (lease gone)."""
    fresh = [claim.survey_id for claim in claims if claim.kind is ClaimKind.FRESH]
    recover = [claim.survey_id for claim in claims if claim.kind is ClaimKind.RECOVER]
    released = 0
    ours = (Survey.status == SurveyStatus.CALLING, Survey.lease_owner == owner)
    with sessions.begin() as session:
        for ids, values in (
            (fresh, {"status": SurveyStatus.SCHEDULED}),
            (recover, {}),
        ):
            if not ids:
                continue
            result = session.execute(
                update(Survey)
                .where(Survey.id.in_(ids), *ours)
                .values(lease_owner=None, lease_until=None, **values)
                .execution_options(synchronize_session=False)
            )
            released += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return released
