"""Staff accounts and the call-taker's state, through ``tickets.staff`` on the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callflows.front_door import MENU_INTENTS
from callflows.steps import Language
from tests.support.staff import PASSWORD, TEST_ACTOR, add_staff
from tickets import staff as staff_store
from tickets.db import utcnow
from tickets.models import (
    AccountAction,
    CallTaker,
    CallTakerState,
    CallTakerStateChange,
    Role,
    Staff,
    StaffAccountChange,
    StaffRole,
)
from tickets.staff import TRANSITIONS, StaffDetails
from webapp.settings import SettingsError, load_settings

S = CallTakerState
ALL_MOVES = [(a, b) for a in S for b in S]
LEGAL = [(a, b) for a, b in ALL_MOVES if b in TRANSITIONS[a] and a is not b]
ILLEGAL = [(a, b) for a, b in ALL_MOVES if b not in TRANSITIONS[a] and a is not b]


def put_in(db: Session, staff: Staff, state: CallTakerState) -> None:
    """Force a state for a test's starting point (not a move anyone could make)."""
    assert staff.call_taker is not None
    staff.call_taker.state = state
    staff.call_taker.away_reason = "test" if state is S.AWAY else None
    db.flush()


def changes_of(db: Session, staff: Staff) -> list[CallTakerStateChange]:
    return list(
        db.scalars(
            select(CallTakerStateChange)
            .where(CallTakerStateChange.staff_id == staff.id)
            .order_by(CallTakerStateChange.id)
        )
    )


# -- tables -------------------------------------------------------------------------------


def test_the_migrations_create_the_staff_tables(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())

    assert {
        "staff",
        "staff_roles",
        "call_takers",
        "call_taker_state_changes",
        "staff_account_changes",
    } <= tables


def test_a_person_holds_a_role_once(db: Session) -> None:
    staff = add_staff(db, "tenzin")
    again = insert(StaffRole).values(
        staff_id=staff.id, role=Role.CALL_TAKER, granted_at=utcnow(), granted_by=TEST_ACTOR
    )

    with pytest.raises(IntegrityError):
        db.execute(again)


def test_roles_are_stored_by_value(db: Session, engine: Engine) -> None:
    add_staff(db, "lhamo", Role.CALL_TAKER, Role.QUALITY_INSPECTOR)

    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT role FROM staff_roles ORDER BY role").scalars()
        assert list(stored) == ["call_taker", "quality_inspector"]


def test_there_are_the_eight_roles_of_the_product() -> None:
    assert {r.value for r in Role} == {
        "call_taker",
        "quality_inspector",
        "reviewer",
        "callback_agent",
        "floor_manager",
        "knowledge_editor",
        "administrator",
        "department_liaison",
    }


def test_languages_and_skills_are_the_front_doors() -> None:
    assert set(staff_store.LANGUAGES) == {language.value for language in Language}
    assert set(staff_store.SKILLS) == {intent.value for intent in MENU_INTENTS.values()}


# -- accounts -----------------------------------------------------------------------------


def test_a_new_call_taker_has_roles_a_profile_and_starts_offline(db: Session) -> None:
    staff = add_staff(
        db,
        "Tenzin",
        Role.CALL_TAKER,
        Role.REVIEWER,
        languages=("zh", "bo"),
        skills=("complaint",),
        phone_number="+86 139 0000 0001",
    )

    db.expire_all()
    staff = staff_store.get_staff("tenzin", session=db)
    assert staff.username == "tenzin"
    assert staff.role_set == {Role.CALL_TAKER, Role.REVIEWER}
    assert staff.call_taker is not None
    assert staff.call_taker.languages == ["zh", "bo"]
    assert staff.call_taker.skills == ["complaint"]
    assert staff.call_taker.phone_number == "+8613900000001"
    assert staff.call_taker.state is S.OFFLINE
    assert staff.is_active
    history = staff_store.account_history(staff, session=db)
    assert [change.action for change in history] == [AccountAction.CREATED]
    assert history[0].actor == TEST_ACTOR


def test_the_password_is_stored_as_a_scrypt_hash_never_plain(db: Session, engine: Engine) -> None:
    staff = add_staff(db, "wang")

    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT password_hash FROM staff").scalar_one()
    assert PASSWORD not in stored
    assert stored.startswith("scrypt:")
    assert staff_store.authenticate("wang", PASSWORD, session=db) == staff


def test_authenticate_refuses_a_wrong_password_and_an_unknown_name(db: Session) -> None:
    add_staff(db, "wang")

    assert staff_store.authenticate("wang", "not-the-password", session=db) is None
    assert staff_store.authenticate("nobody", PASSWORD, session=db) is None


def test_authenticate_tells_a_deactivated_person_only_with_the_right_password(
    db: Session,
) -> None:
    staff = add_staff(db, "wang")
    staff_store.deactivate_staff(staff, session=db, actor=TEST_ACTOR)

    assert staff_store.authenticate("wang", "not-the-password", session=db) is None
    with pytest.raises(staff_store.AccountDeactivated):
        staff_store.authenticate("wang", PASSWORD, session=db)


def test_a_new_password_replaces_the_hash_and_the_session_token(db: Session) -> None:
    staff = add_staff(db, "wang")
    old_hash, old_token = staff.password_hash, staff.session_token

    staff_store.set_password(staff, "another-long-password", session=db, actor=TEST_ACTOR)

    assert staff.password_hash != old_hash
    assert staff.session_token != old_token
    assert staff_store.authenticate("wang", "another-long-password", session=db) == staff
    assert staff_store.authenticate("wang", PASSWORD, session=db) is None
    actions = [c.action for c in staff_store.account_history(staff, session=db)]
    assert actions[0] is AccountAction.PASSWORD_SET


def test_a_short_password_is_refused(db: Session) -> None:
    staff = add_staff(db, "wang")

    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.set_password(staff, "short", session=db, actor=TEST_ACTOR)
    assert "password" in raised.value.errors


def test_bad_details_are_named_field_by_field(db: Session) -> None:
    details = StaffDetails(
        display_name="  ",
        roles=frozenset({Role.CALL_TAKER}),
        languages=("fr",),
        skills=("gossip",),
        phone_number="13900000001",  # not E.164
        client_identity="has space",
    )

    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.create_staff("Bad Name!", "short", details, session=db, actor=TEST_ACTOR)

    assert set(raised.value.errors) == {
        "username",
        "password",
        "display_name",
        "languages",
        "skills",
        "phone_number",
        "client_identity",
    }
    assert db.scalar(select(func.count()).select_from(Staff)) == 0


def test_a_call_taker_needs_a_language_and_a_way_to_be_rung(db: Session) -> None:
    details = StaffDetails(display_name="Dawa", roles=frozenset({Role.CALL_TAKER}))

    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.create_staff("dawa", PASSWORD, details, session=db, actor=TEST_ACTOR)

    assert set(raised.value.errors) == {"languages", "phone_number"}


def test_a_browser_identity_is_enough_to_be_rung(db: Session) -> None:
    staff = add_staff(db, "emma", languages=("en",), phone_number=None, client_identity="emma")

    assert staff.call_taker is not None
    assert staff.call_taker.client_identity == "emma"
    assert staff.call_taker.phone_number is None


def test_a_username_or_browser_identity_is_taken_once(db: Session) -> None:
    add_staff(db, "emma", client_identity="emma")
    details = StaffDetails(
        "Emma Two",
        frozenset({Role.CALL_TAKER}),
        languages=("en",),
        client_identity="emma",
    )

    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.create_staff("EMMA", PASSWORD, details, session=db, actor=TEST_ACTOR)
    assert "already taken" in raised.value.errors["username"]

    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.create_staff("emma2", PASSWORD, details, session=db, actor=TEST_ACTOR)
    assert "someone else" in raised.value.errors["client_identity"]


def test_an_update_changes_roles_and_profile_and_says_what_changed(db: Session) -> None:
    staff = add_staff(db, "wang", languages=("zh",))
    details = StaffDetails(
        "Wang Fang",
        frozenset({Role.CALL_TAKER, Role.CALLBACK_AGENT}),
        languages=("zh", "en"),
        skills=("help",),
        phone_number="+8613900000009",
    )

    staff_store.update_staff(staff, details, session=db, actor="staff:1")
    db.commit()

    db.expire_all()
    staff = staff_store.get_staff("wang", session=db)
    assert staff.display_name == "Wang Fang"
    assert staff.role_set == {Role.CALL_TAKER, Role.CALLBACK_AGENT}
    assert staff.call_taker is not None
    assert staff.call_taker.languages == ["zh", "en"]
    assert staff.call_taker.phone_number == "+8613900000009"
    latest = staff_store.account_history(staff, session=db)[0]
    assert latest.action is AccountAction.UPDATED
    assert latest.actor == "staff:1"
    assert "callback_agent" in latest.detail and "+8613900000009" in latest.detail


def test_deactivation_keeps_the_account_ends_logins_and_takes_them_off_the_rota(
    db: Session,
) -> None:
    staff = add_staff(db, "wang")
    staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)
    token = staff.session_token

    staff_store.deactivate_staff(staff, session=db, actor="staff:1")
    db.commit()

    assert db.get(Staff, staff.id) is not None
    assert not staff.is_active
    assert staff.session_token != token
    assert staff.call_taker is not None
    assert staff.call_taker.state is S.OFFLINE
    assert changes_of(db, staff)[-1].reason == "account deactivated"
    assert staff_store.list_available_call_takers(session=db) == []
    with pytest.raises(staff_store.StaffError, match="deactivated"):
        staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)


def test_reactivation_is_recorded(db: Session) -> None:
    staff = add_staff(db, "wang")
    staff_store.deactivate_staff(staff, session=db, actor=TEST_ACTOR)

    staff_store.update_staff(staff, staff_store.details_of(staff), session=db, actor=TEST_ACTOR)
    assert not staff.is_active  # the same details: still closed
    details = staff_store.details_of(staff)
    staff_store.update_staff(
        staff,
        StaffDetails(**{**details.__dict__, "is_active": True}),
        session=db,
        actor=TEST_ACTOR,
    )

    assert staff.is_active
    actions = [c.action for c in staff_store.account_history(staff, session=db)]
    assert actions[:2] == [AccountAction.REACTIVATED, AccountAction.DEACTIVATED]


def test_the_last_active_administrator_cannot_be_closed_or_demoted(db: Session) -> None:
    admin = add_staff(db, "admin", Role.ADMINISTRATOR, languages=(), phone_number=None)

    with pytest.raises(staff_store.StaffError, match="last active administrator"):
        staff_store.deactivate_staff(admin, session=db, actor=TEST_ACTOR)
    with pytest.raises(staff_store.InvalidStaff) as raised:
        staff_store.update_staff(
            admin, StaffDetails("Admin", frozenset({Role.REVIEWER})), session=db, actor=TEST_ACTOR
        )
    assert "roles" in raised.value.errors

    add_staff(db, "admin2", Role.ADMINISTRATOR, languages=(), phone_number=None)
    staff_store.deactivate_staff(admin, session=db, actor=TEST_ACTOR)
    assert not admin.is_active


def test_taking_the_call_taker_role_away_sends_them_offline(db: Session) -> None:
    staff = add_staff(db, "wang")
    staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)

    staff_store.update_staff(
        staff, StaffDetails("Wang", frozenset({Role.REVIEWER})), session=db, actor=TEST_ACTOR
    )

    assert staff.call_taker is not None
    assert staff.call_taker.state is S.OFFLINE
    with pytest.raises(staff_store.StaffError, match="not a call-taker"):
        staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)


# -- the call-taker's state ---------------------------------------------------------------


@pytest.mark.parametrize(("from_state", "to_state"), LEGAL, ids=lambda s: s.value)
def test_a_legal_move_changes_the_state_and_is_recorded(
    db: Session, from_state: CallTakerState, to_state: CallTakerState
) -> None:
    staff = add_staff(db, "wang")
    put_in(db, staff, from_state)

    change = staff_store.change_state(
        staff, to_state, session=db, actor="staff:7", reason="why not", call_sid="CA" + "0" * 32
    )
    db.commit()

    assert change is not None
    assert staff.call_taker is not None
    assert staff.call_taker.state is to_state
    [row] = changes_of(db, staff)
    assert (row.from_state, row.to_state) == (from_state, to_state)
    assert row.actor == "staff:7"
    assert row.reason == "why not"
    assert row.at == staff.call_taker.state_changed_at


@pytest.mark.parametrize(("from_state", "to_state"), ILLEGAL, ids=lambda s: s.value)
def test_an_illegal_move_is_refused_with_a_clear_error_and_nothing_recorded(
    db: Session, from_state: CallTakerState, to_state: CallTakerState
) -> None:
    staff = add_staff(db, "wang")
    put_in(db, staff, from_state)

    with pytest.raises(staff_store.IllegalTransition) as raised:
        staff_store.change_state(staff, to_state, session=db, actor="staff:7", reason="no")

    message = str(raised.value)
    assert f"from {from_state.value} to {to_state.value}" in message
    assert "allowed from" in message
    assert staff.call_taker is not None
    assert staff.call_taker.state is from_state
    assert changes_of(db, staff) == []


def test_staying_where_you_are_records_nothing(db: Session) -> None:
    staff = add_staff(db, "wang")
    staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)

    assert staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR) is None
    assert len(changes_of(db, staff)) == 1


def test_going_away_needs_a_reason_and_a_new_reason_is_recorded(db: Session) -> None:
    staff = add_staff(db, "wang")
    with pytest.raises(staff_store.StaffError, match="reason"):
        staff_store.change_state(staff, S.AWAY, session=db, actor=TEST_ACTOR)

    staff_store.change_state(staff, S.AWAY, session=db, actor=TEST_ACTOR, reason="meal")
    staff_store.change_state(staff, S.AWAY, session=db, actor=TEST_ACTOR, reason="meal")
    staff_store.change_state(staff, S.AWAY, session=db, actor=TEST_ACTOR, reason="training")

    assert staff.call_taker is not None
    assert staff.call_taker.away_reason == "training"
    assert [c.reason for c in changes_of(db, staff)] == ["meal", "training"]
    staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR)
    assert staff.call_taker.away_reason is None


def test_idle_since_is_when_they_became_free_and_a_missed_ring_keeps_their_place(
    db: Session,
) -> None:
    staff = add_staff(db, "wang")
    t0 = utcnow()
    profile = staff.call_taker
    assert profile is not None

    staff_store.change_state(staff, S.AVAILABLE, session=db, actor=TEST_ACTOR, now=t0)
    assert profile.idle_since == t0
    staff_store.change_state(
        staff, S.RINGING, session=db, actor="system:routing", call_sid="CA1", now=t0 + timedelta(1)
    )
    assert profile.call_sid == "CA1"
    staff_store.change_state(
        staff, S.AVAILABLE, session=db, actor="system:routing", now=t0 + timedelta(seconds=70)
    )
    assert profile.idle_since == t0  # the caller hung up while it rang: still first in line
    assert profile.call_sid is None

    staff_store.change_state(staff, S.RINGING, session=db, actor=TEST_ACTOR, call_sid="CA2")
    staff_store.change_state(staff, S.ON_CALL, session=db, actor=TEST_ACTOR)
    assert profile.call_sid == "CA2"
    later = utcnow() + timedelta(minutes=5)
    staff_store.change_state(staff, S.WRAP_UP, session=db, actor=TEST_ACTOR, now=later)
    staff_store.change_state(staff, S.AVAILABLE, session=db, actor="staff:1", now=later)
    assert profile.idle_since == later
    assert [c.call_sid for c in changes_of(db, staff)] == [
        None,
        *["CA1"] * 2,  # rung, then the ring came to nothing
        *["CA2"] * 4,  # rung, answered, wrapped up, free again
    ]


def test_wrap_up_ends_by_itself_after_the_configured_time(db: Session) -> None:
    staff = add_staff(db, "wang")
    profile = staff.call_taker
    assert profile is not None
    put_in(db, staff, S.ON_CALL)
    start = utcnow()

    staff_store.change_state(
        staff, S.WRAP_UP, session=db, actor="system:ivr", wrap_up_seconds=45, now=start
    )

    assert profile.wrap_up_until == start + timedelta(seconds=45)
    assert not staff_store.is_wrap_up_over(profile, start + timedelta(seconds=44))
    assert staff_store.is_wrap_up_over(profile, start + timedelta(seconds=45))
    assert staff_store.end_expired_wrap_ups(session=db, now=start + timedelta(seconds=44)) == []

    ended = staff_store.end_expired_wrap_ups(session=db, now=start + timedelta(seconds=60))
    db.commit()

    assert ended == [profile]
    assert profile.state is S.AVAILABLE
    assert profile.wrap_up_until is None
    assert profile.idle_since == start + timedelta(seconds=45)  # free since the time was up
    last = changes_of(db, staff)[-1]
    assert (last.from_state, last.to_state, last.actor) == (
        S.WRAP_UP,
        S.AVAILABLE,
        "system:wrap-up",
    )


def test_the_next_read_ends_an_expired_wrap_up(db: Session) -> None:
    staff = add_staff(db, "wang")
    put_in(db, staff, S.ON_CALL)
    start = utcnow() - timedelta(minutes=1)
    staff_store.change_state(staff, S.WRAP_UP, session=db, actor=TEST_ACTOR, now=start)

    available = staff_store.list_available_call_takers(session=db)

    assert [p.staff_id for p in available] == [staff.id]


def test_a_move_from_an_expired_wrap_up_starts_from_available(db: Session) -> None:
    staff = add_staff(db, "wang")
    put_in(db, staff, S.ON_CALL)
    start = utcnow() - timedelta(minutes=1)
    staff_store.change_state(staff, S.WRAP_UP, session=db, actor=TEST_ACTOR, now=start)

    staff_store.change_state(staff, S.RINGING, session=db, actor="system:routing", call_sid="CA3")

    assert [(c.from_state, c.to_state) for c in changes_of(db, staff)][-2:] == [
        (S.WRAP_UP, S.AVAILABLE),
        (S.AVAILABLE, S.RINGING),
    ]


def test_routing_gets_the_active_available_call_takers_longest_idle_first(db: Session) -> None:
    now = utcnow()
    first = add_staff(db, "first")
    second = add_staff(db, "second", phone_number="+8613900000002")
    away = add_staff(db, "away", phone_number="+8613900000003")
    closed = add_staff(db, "closed", phone_number="+8613900000004")
    add_staff(db, "reviewer", Role.REVIEWER, languages=(), phone_number=None)
    admin = add_staff(db, "admin", Role.ADMINISTRATOR, Role.CALL_TAKER)
    staff_store.change_state(second, S.AVAILABLE, session=db, actor=TEST_ACTOR, now=now)
    staff_store.change_state(
        first, S.AVAILABLE, session=db, actor=TEST_ACTOR, now=now - timedelta(9)
    )
    staff_store.change_state(away, S.AWAY, session=db, actor=TEST_ACTOR, reason="meal")
    staff_store.change_state(closed, S.AVAILABLE, session=db, actor=TEST_ACTOR)
    staff_store.deactivate_staff(closed, session=db, actor=TEST_ACTOR)
    staff_store.change_state(
        admin, S.AVAILABLE, session=db, actor=TEST_ACTOR, now=now + timedelta(1)
    )
    db.commit()

    available = staff_store.list_available_call_takers(session=db)

    assert [p.staff.username for p in available] == ["first", "second", "admin"]
    on_duty = staff_store.list_call_takers(states=(S.AVAILABLE, S.AWAY), session=db)
    assert {p.staff.username for p in on_duty} == {"first", "second", "admin", "away"}
    assert db.scalar(select(func.count()).select_from(CallTaker)) == 6 - 1  # reviewer: none


def test_account_changes_are_append_only_rows(db: Session) -> None:
    staff = add_staff(db, "wang")
    staff_store.set_password(staff, "a-new-long-password", session=db, actor=TEST_ACTOR)
    staff_store.deactivate_staff(staff, session=db, actor=TEST_ACTOR)
    db.commit()

    rows = db.scalars(select(StaffAccountChange).order_by(StaffAccountChange.id)).all()
    assert [r.action for r in rows] == [
        AccountAction.CREATED,
        AccountAction.PASSWORD_SET,
        AccountAction.DEACTIVATED,
    ]


# -- settings ------------------------------------------------------------------------------


def test_wrap_up_and_login_lifetime_come_from_the_environment() -> None:
    assert load_settings({}).wrap_up_seconds == 30
    assert load_settings({}).staff_session_hours == 12

    settings = load_settings({"WRAP_UP_SECONDS": "0", "STAFF_SESSION_HOURS": "8"})

    assert settings.wrap_up_seconds == 0
    assert settings.staff_session_hours == 8


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WRAP_UP_SECONDS", "-1"),
        ("WRAP_UP_SECONDS", "half a minute"),
        ("WRAP_UP_SECONDS", "3601"),
        ("STAFF_SESSION_HOURS", "0"),
        ("STAFF_SESSION_HOURS", "1.5"),
    ],
)
def test_a_bad_wrap_up_or_login_lifetime_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
