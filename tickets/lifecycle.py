"""The work-order lifecycle as one table: which action may move an order from which
state, to which state, by which roles (PRODUCT.md, "Work orders").

    received ─dispatch→ dispatched ─accept→ accepted ─contact→ in progress
       │                    │                  │                  │
       └close-on-the-spot   └──── object ──────┴──── object ──────┤ (→ objected)
                                                                  answer
    objected ─uphold→ dispatched (another department)             ↓
             ─reject→ back where it was (the clock kept running)  answered ─start-callback→
    callback ─close→ closed;   callback/answered/closed ─reopen→ dispatched (重办)

Side paths keep the state: progress notes, extension requests and decisions, reminders
(催办) and supervision (督办). ``check`` refuses anything else with an ``IllegalMove``
whose message a person can act on. Pure: no database, no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tickets.models import Role, WorkOrderState

S = WorkOrderState

SYSTEM = "system"  # the hotline itself (worker sweeps, the survey robot): not a staff role


class Action(StrEnum):
    DISPATCH = "dispatch"  # 派单
    CLOSE_ON_THE_SPOT = "close_on_the_spot"  # 直接答复
    ACCEPT = "accept"  # 签收
    CONTACT = "contact"  # 响应: first contact with the citizen
    PROGRESS = "progress"  # 办理: a progress note
    ANSWER = "answer"  # 反馈: the outcome
    OBJECT = "object"  # 退单
    UPHOLD_OBJECTION = "uphold_objection"  # 审核: not theirs, re-dispatched
    REJECT_OBJECTION = "reject_objection"  # 审核: theirs after all
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    REMIND = "remind"  # 催办
    SUPERVISE = "supervise"  # 督办
    START_CALLBACK = "start_callback"  # 回访
    CLOSE = "close"  # 办结/归档
    REOPEN = "reopen"  # 重办


@dataclass(frozen=True, slots=True)
class Rule:
    sources: frozenset[WorkOrderState]
    target: WorkOrderState | None  # None: the state stays (a side path)
    roles: frozenset[str]  # Role values, or SYSTEM
    needs_reason: bool


def _rule(
    sources: set[WorkOrderState],
    target: WorkOrderState | None,
    roles: set[str],
    *,
    needs_reason: bool = True,
) -> Rule:
    return Rule(frozenset(sources), target, frozenset(roles), needs_reason)


OPEN_AT_DEPARTMENT = {S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS}
BEING_HANDLED = {S.ACCEPTED, S.IN_PROGRESS}
LIAISON = {Role.DEPARTMENT_LIAISON.value}
REVIEW = {Role.REVIEWER.value, Role.FLOOR_MANAGER.value}

# Where a rejected objection sends the order is the state it had before (see
# ``order_flow``): the table's target for REJECT_OBJECTION is None and the caller passes it.
RULES: dict[Action, Rule] = {
    Action.DISPATCH: _rule(
        {S.RECEIVED},
        S.DISPATCHED,
        {Role.CALL_TAKER.value, *REVIEW},
        needs_reason=False,
    ),
    Action.CLOSE_ON_THE_SPOT: _rule(
        {S.RECEIVED}, S.CLOSED, {Role.CALL_TAKER.value, Role.FLOOR_MANAGER.value}
    ),
    Action.ACCEPT: _rule({S.DISPATCHED}, S.ACCEPTED, LIAISON, needs_reason=False),
    Action.CONTACT: _rule({S.ACCEPTED}, S.IN_PROGRESS, LIAISON),
    Action.PROGRESS: _rule({S.IN_PROGRESS}, None, LIAISON),
    Action.ANSWER: _rule(BEING_HANDLED, S.ANSWERED, LIAISON),
    Action.OBJECT: _rule(OPEN_AT_DEPARTMENT, S.OBJECTED, LIAISON),
    Action.UPHOLD_OBJECTION: _rule({S.OBJECTED}, S.DISPATCHED, {Role.REVIEWER.value}),
    Action.REJECT_OBJECTION: _rule({S.OBJECTED}, None, {Role.REVIEWER.value}),
    Action.REQUEST_EXTENSION: _rule(BEING_HANDLED, None, LIAISON),
    Action.APPROVE_EXTENSION: _rule({*BEING_HANDLED, S.OBJECTED}, None, REVIEW),
    Action.REFUSE_EXTENSION: _rule({*BEING_HANDLED, S.OBJECTED}, None, REVIEW),
    Action.REMIND: _rule(
        {*OPEN_AT_DEPARTMENT, S.OBJECTED},
        None,
        {SYSTEM, Role.CALL_TAKER.value, *REVIEW},
    ),
    Action.SUPERVISE: _rule(OPEN_AT_DEPARTMENT, None, {SYSTEM, Role.FLOOR_MANAGER.value}),
    Action.START_CALLBACK: _rule(
        {S.ANSWERED}, S.CALLBACK, {SYSTEM, Role.CALLBACK_AGENT.value}, needs_reason=False
    ),
    Action.CLOSE: _rule(
        {S.ANSWERED, S.CALLBACK}, S.CLOSED, {SYSTEM, Role.CALLBACK_AGENT.value, *REVIEW}
    ),
    Action.REOPEN: _rule({S.ANSWERED, S.CALLBACK, S.CLOSED}, S.DISPATCHED, REVIEW),
}

OPEN_STATES = frozenset({*OPEN_AT_DEPARTMENT, S.OBJECTED})


class IllegalMove(ValueError):
    """An action the lifecycle does not allow here; the message says why."""


def check(
    action: Action, state: WorkOrderState, role: str, reason: str = ""
) -> WorkOrderState | None:
    """The state ``action`` leads to from ``state`` (None: it stays), or ``IllegalMove``."""
    rule = RULES[action]
    if state not in rule.sources:
        allowed = ", ".join(sorted(source.value for source in rule.sources))
        raise IllegalMove(
            f"cannot {action.value.replace('_', ' ')} an order that is {state.value}"
            f" (only when {allowed})"
        )
    if role not in rule.roles:
        raise IllegalMove(f"the role {role!r} may not {action.value.replace('_', ' ')}")
    if rule.needs_reason and not reason.strip():
        raise IllegalMove(f"{action.value.replace('_', ' ')} needs a reason")
    return rule.target


def allowed_actions(state: WorkOrderState, roles: set[str] | frozenset[str]) -> list[Action]:
    """What a person holding ``roles`` may do to an order in ``state`` (for the buttons)."""
    return [
        action
        for action, rule in RULES.items()
        if state in rule.sources and rule.roles & set(roles)
    ]
