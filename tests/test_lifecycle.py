"""The lifecycle table: every action from every state, by every role — allowed exactly
where PRODUCT.md's lifecycle says, refused everywhere else with a message that says why."""

from __future__ import annotations

import itertools

import pytest

from tickets.lifecycle import RULES, SYSTEM, Action, IllegalMove, allowed_actions, check
from tickets.models import Role, WorkOrderState

S = WorkOrderState
L = Role.DEPARTMENT_LIAISON.value
CT = Role.CALL_TAKER.value
RV = Role.REVIEWER.value
FM = Role.FLOOR_MANAGER.value
CB = Role.CALLBACK_AGENT.value

# (action, from, role) -> to (None: stays). Everything not listed here is refused.
ALLOWED: dict[tuple[Action, WorkOrderState], tuple[WorkOrderState | None, set[str]]] = {
    (Action.DISPATCH, S.RECEIVED): (S.DISPATCHED, {CT, RV, FM}),
    (Action.CLOSE_ON_THE_SPOT, S.RECEIVED): (S.CLOSED, {CT, FM}),
    (Action.ACCEPT, S.DISPATCHED): (S.ACCEPTED, {L}),
    (Action.CONTACT, S.ACCEPTED): (S.IN_PROGRESS, {L}),
    (Action.PROGRESS, S.IN_PROGRESS): (None, {L}),
    (Action.ANSWER, S.ACCEPTED): (S.ANSWERED, {L}),
    (Action.ANSWER, S.IN_PROGRESS): (S.ANSWERED, {L}),
    (Action.OBJECT, S.DISPATCHED): (S.OBJECTED, {L}),
    (Action.OBJECT, S.ACCEPTED): (S.OBJECTED, {L}),
    (Action.OBJECT, S.IN_PROGRESS): (S.OBJECTED, {L}),
    (Action.UPHOLD_OBJECTION, S.OBJECTED): (S.DISPATCHED, {RV}),
    (Action.REJECT_OBJECTION, S.OBJECTED): (None, {RV}),
    (Action.REQUEST_EXTENSION, S.ACCEPTED): (None, {L}),
    (Action.REQUEST_EXTENSION, S.IN_PROGRESS): (None, {L}),
    **{
        (decision, state): (None, {RV, FM})
        for decision in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION)
        for state in (S.ACCEPTED, S.IN_PROGRESS, S.OBJECTED)
    },
    **{
        (Action.REMIND, state): (None, {SYSTEM, CT, RV, FM})
        for state in (S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS, S.OBJECTED)
    },
    **{
        (Action.SUPERVISE, state): (None, {SYSTEM, FM})
        for state in (S.DISPATCHED, S.ACCEPTED, S.IN_PROGRESS)
    },
    (Action.START_CALLBACK, S.ANSWERED): (S.CALLBACK, {SYSTEM, CB}),
    (Action.CLOSE, S.ANSWERED): (S.CLOSED, {SYSTEM, CB, RV, FM}),
    (Action.CLOSE, S.CALLBACK): (S.CLOSED, {SYSTEM, CB, RV, FM}),
    (Action.REOPEN, S.ANSWERED): (S.DISPATCHED, {RV, FM}),
    (Action.REOPEN, S.CALLBACK): (S.DISPATCHED, {RV, FM}),
    (Action.REOPEN, S.CLOSED): (S.DISPATCHED, {RV, FM}),
}

ROLES = [role.value for role in Role] + [SYSTEM]
CASES = list(itertools.product(Action, S, ROLES))


@pytest.mark.parametrize(("action", "state", "role"), CASES)
def test_every_action_from_every_state_by_every_role(
    action: Action, state: WorkOrderState, role: str
) -> None:
    allowed = ALLOWED.get((action, state))
    if allowed is not None and role in allowed[1]:
        assert check(action, state, role, "because") == allowed[0]
        return
    with pytest.raises(IllegalMove) as refused:
        check(action, state, role, "because")
    message = str(refused.value)
    if allowed is None:
        assert f"that is {state.value}" in message  # the state is why
    else:
        assert f"role {role!r} may not" in message  # the role is why


def test_the_table_and_the_expectations_agree() -> None:
    """No rule is left untested: each (action, source) of the table is listed above."""
    listed = {(action, state) for action, state in ALLOWED}
    in_table = {(action, state) for action, rule in RULES.items() for state in rule.sources}
    assert listed == in_table


@pytest.mark.parametrize(
    "action",
    [action for action, rule in RULES.items() if rule.needs_reason],
)
def test_actions_that_need_a_reason_refuse_a_blank_one(action: Action) -> None:
    state, (_, roles) = next((s, v) for (a, s), v in ALLOWED.items() if a is action)
    with pytest.raises(IllegalMove, match="needs a reason"):
        check(action, state, sorted(roles)[0], "   ")


def test_nothing_leaves_closed_but_a_reopen() -> None:
    assert allowed_actions(S.CLOSED, set(ROLES)) == [Action.REOPEN]


def test_a_liaison_sees_the_department_buttons() -> None:
    assert allowed_actions(S.DISPATCHED, {L}) == [Action.ACCEPT, Action.OBJECT]
    assert allowed_actions(S.IN_PROGRESS, {L}) == [
        Action.PROGRESS,
        Action.ANSWER,
        Action.OBJECT,
        Action.REQUEST_EXTENSION,
    ]
