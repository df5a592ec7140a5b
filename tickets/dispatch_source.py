"""What the dispatch recommender (``routing.dispatch``) learns from, read out of the ticket
store: a stored directory version as routing's ``Directory``, and the labelled examples
of dispatch history.

Every dispatched order is an example (its summary and caller's words → the item it is
dispatched to now), and so is every upheld objection: the re-dispatch replaced the item,
so the order teaches the corrected one. Orders waiting for an objection's review are
left out until it is decided: their item is in dispute.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.dispatch_directory import Directory, directory_from_rows
from tickets.directory import load_snapshot
from tickets.models import DirectoryItem, DirectoryVersion, WorkOrder, WorkOrderState

MAX_EXAMPLES = 50_000  # the newest; older history adds little and costs training time


def directory_of(version: DirectoryVersion, *, session: Session) -> Directory:
    snapshot = load_snapshot(version, session=session)
    return directory_from_rows(
        (
            {"code": c.code, "name": c.name, "description": c.description}
            for c in snapshot.categories
        ),
        (
            {
                "code": d.code,
                "name": d.name,
                "level": d.level.value,
                "county": d.county or "",
                "role": d.role,
            }
            for d in snapshot.departments
        ),
        (
            {
                "code": i.code,
                "category": i.category,
                "title": i.title,
                "description": i.description,
                "keywords": "|".join(i.keywords),
                "level": i.level.value,
                "role": i.role,
                "sla_days": str(i.sla_days),
                "urgent": "yes" if i.is_urgent else "no",
            }
            for i in snapshot.items
        ),
    )


def order_text(summary: str, caller_words: str = "") -> str:
    """What the recommender reads of an order: the summary, then the caller's own words."""
    return " ".join(part.strip() for part in (summary, caller_words) if part and part.strip())


def learned_examples(*, session: Session, limit: int = MAX_EXAMPLES) -> list[tuple[str, str]]:
    """(text, item code) of dispatched orders, newest first."""
    rows = session.execute(
        select(WorkOrder.summary, WorkOrder.caller_words, DirectoryItem.code)
        .join(DirectoryItem, DirectoryItem.id == WorkOrder.directory_item_id)
        .where(WorkOrder.dispatch_count > 0, WorkOrder.state != WorkOrderState.OBJECTED)
        .order_by(WorkOrder.id.desc())
        .limit(limit)
    )
    return [(order_text(summary, words), code) for summary, words, code in rows]


def examples_digest(examples: list[tuple[str, str]]) -> str:
    """A short fingerprint of a set of examples (has anything been learnt since?)."""
    digest = hashlib.sha256()
    for text, code in examples:
        digest.update(f"{code}\x1f{text}\x1e".encode())
    return digest.hexdigest()[:16]
