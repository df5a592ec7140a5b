"""Staff accounts and call-takers: create and edit them, their passwords, and the call-taker's
state (offline, available, ringing, on a call, wrap-up, away) with its audit trail.

Service functions take the session as a keyword and never commit. Nothing is deleted: an
account is deactivated, a role taken away leaves its trace in ``staff_account_changes``.
Passwords are hashed with werkzeug's scrypt (memory-hard, in the standard library's
``hashlib``, no extra dependency); the hash string names its method, so a later switch to
argon2 can rehash at the next login.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Exists, Row, Select, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

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
from tickets.phones import to_e164

# The values of callflows.steps.Language and of the queueing intents of
# callflows.front_door.Intent (tickets may not import callflows; a test keeps them equal).
LANGUAGES = ("zh", "bo", "en")
SKILLS = ("consultation", "complaint", "help")
MIN_PASSWORD_LENGTH = 10
DEFAULT_WRAP_UP_SECONDS = 30
SYSTEM = "system"

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
CLIENT_IDENTITY = re.compile(r"^[A-Za-z0-9_]{1,120}$")  # what Twilio Client accepts
DEPARTMENT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,39}$")  # a directory code, e.g. D-CGQ-ZJJ

S = CallTakerState
# Who may move a call-taker where. The console offers available, away and offline; the
# hotline moves them through ringing, on a call and wrap-up.
TRANSITIONS: dict[CallTakerState, frozenset[CallTakerState]] = {
    S.OFFLINE: frozenset({S.AVAILABLE, S.AWAY}),
    S.AVAILABLE: frozenset({S.RINGING, S.AWAY, S.OFFLINE}),
    S.RINGING: frozenset({S.ON_CALL, S.AVAILABLE, S.AWAY}),  # answered, caller gone, no answer
    S.ON_CALL: frozenset({S.WRAP_UP}),
    S.WRAP_UP: frozenset({S.AVAILABLE, S.AWAY, S.OFFLINE}),
    S.AWAY: frozenset({S.AVAILABLE, S.AWAY, S.OFFLINE}),  # away to away: a new reason
}
CONSOLE_STATES = (S.AVAILABLE, S.AWAY, S.OFFLINE)


class StaffError(ValueError):
    """Something asked of the staff store that cannot be done; the message says why."""


class InvalidStaff(StaffError):
    """Field values that are not acceptable: ``errors`` maps each field to its problem."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
        self.errors = errors


class StaffNotFound(StaffError):
    pass


class AccountDeactivated(StaffError):
    pass


class IllegalTransition(StaffError):
    def __init__(self, staff: Staff | str, from_state: CallTakerState, to_state: CallTakerState):
        username = staff if isinstance(staff, str) else staff.username
        super().__init__(
            f"{username} cannot go from {from_state.value} to {to_state.value}"
            f" (allowed from {from_state.value}: "
            f"{', '.join(sorted(s.value for s in TRANSITIONS[from_state])) or 'nothing'})"
        )
        self.from_state = from_state
        self.to_state = to_state


def staff_actor(staff_id: int) -> str:
    """The ``actor`` recorded for a person: ``staff:<id>``."""
    return f"staff:{staff_id}"


@dataclass(frozen=True)
class StaffDetails:
    """What an administrator sets on an account (everything but the username and password)."""

    display_name: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    languages: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    phone_number: str | None = None
    client_identity: str | None = None
    is_active: bool = True
    department_code: str | None = None  # a liaison's department (directory code)

    def checked(self) -> StaffDetails:
        """The details normalised (E.164, known values in a stable order); InvalidStaff."""
        errors: dict[str, str] = {}
        name = " ".join(self.display_name.split())
        if not name:
            errors["display_name"] = "a name is required"
        elif len(name) > 120:
            errors["display_name"] = "at most 120 characters"
        unknown = [v for v in self.languages if v not in LANGUAGES]
        if unknown:
            errors["languages"] = f"unknown language {unknown[0]!r}: use {', '.join(LANGUAGES)}"
        unknown = [v for v in self.skills if v not in SKILLS]
        if unknown:
            errors["skills"] = f"unknown skill {unknown[0]!r}: use {', '.join(SKILLS)}"
        phone = (self.phone_number or "").strip() or None
        if phone is not None:
            number = to_e164(phone) if phone.startswith("+") else None
            if number is None:
                errors["phone_number"] = "a phone number in E.164 form, e.g. +8613900000001"
            phone = number
        identity = (self.client_identity or "").strip() or None
        if identity is not None and not CLIENT_IDENTITY.match(identity):
            errors["client_identity"] = "letters, digits and _ only, at most 120"
        if Role.CALL_TAKER in self.roles:
            if not self.languages:
                errors.setdefault("languages", "a call-taker speaks at least one language")
            reachable = phone or identity or {"phone_number", "client_identity"} & errors.keys()
            if not reachable:
                errors["phone_number"] = "a call-taker needs a phone number or a browser identity"
        department = (self.department_code or "").strip().upper() or None
        if department is not None and not DEPARTMENT_CODE.match(department):
            errors["department_code"] = "a department code of the duty directory, e.g. D-CGQ-ZJJ"
        if Role.DEPARTMENT_LIAISON in self.roles and department is None:
            errors["department_code"] = "a department liaison needs their department's code"
        if errors:
            raise InvalidStaff(errors)
        return StaffDetails(
            display_name=name,
            roles=frozenset(self.roles),
            languages=tuple(v for v in LANGUAGES if v in self.languages),
            skills=tuple(v for v in SKILLS if v in self.skills),
            phone_number=phone,
            client_identity=identity,
            is_active=self.is_active,
            department_code=department,
        )


# -- queries --------------------------------------------------------------------------------


def find_staff(username: str, *, session: Session) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.username == username.strip().lower()))


def get_staff(username: str, *, session: Session) -> Staff:
    staff = find_staff(username, session=session)
    if staff is None:
        raise StaffNotFound(f"no staff member is called {username!r}")
    return staff


def get_staff_by_id(staff_id: int, *, session: Session) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise StaffNotFound(f"no staff member has id {staff_id}")
    return staff


def list_staff(*, session: Session) -> list[Staff]:
    """Everyone, active first, then by name."""
    return list(session.scalars(select(Staff).order_by(Staff.is_active.desc(), Staff.username)))


def account_history(
    staff: Staff, *, session: Session, limit: int | None = None
) -> list[StaffAccountChange]:
    """The account's changes, newest first."""
    return list(
        session.scalars(
            select(StaffAccountChange)
            .where(StaffAccountChange.staff_id == staff.id)
            .order_by(StaffAccountChange.id.desc())
            .limit(limit)
        )
    )


def state_history(
    staff: Staff, *, session: Session, limit: int | None = None
) -> list[CallTakerStateChange]:
    """The call-taker's state changes, newest first."""
    return list(
        session.scalars(
            select(CallTakerStateChange)
            .where(CallTakerStateChange.staff_id == staff.id)
            .order_by(CallTakerStateChange.id.desc())
            .limit(limit)
        )
    )


# -- accounts -------------------------------------------------------------------------------


def new_staff_problems(
    username: str, password: str, details: StaffDetails, *, session: Session
) -> dict[str, str]:
    """Everything wrong with a new account, field by field (empty: it can be created)."""
    errors: dict[str, str] = {}
    name = username.strip().lower()
    if not USERNAME.match(name):
        errors["username"] = "2-64 characters: lowercase letters, digits, '.', '_' or '-'"
    elif find_staff(name, session=session) is not None:
        errors["username"] = f"{name!r} is already taken"
    try:
        _check_password(password)
    except InvalidStaff as error:
        errors.update(error.errors)
    try:
        details = details.checked()
    except InvalidStaff as error:
        errors.update(error.errors)
    else:
        errors.update(_identity_taken(details, None, session=session))
    return errors


def update_problems(staff: Staff, details: StaffDetails, *, session: Session) -> dict[str, str]:
    """Everything wrong with new details for ``staff`` (empty: they can be saved)."""
    try:
        details = details.checked()
    except InvalidStaff as error:
        return error.errors
    errors = _identity_taken(details, staff, session=session)
    if Role.ADMINISTRATOR not in details.roles or not details.is_active:
        errors.update(_last_administrator(staff, session=session))
    return errors


def create_staff(
    username: str, password: str, details: StaffDetails, *, session: Session, actor: str
) -> Staff:
    """A new account (InvalidStaff when a value is wrong or the username is taken)."""
    errors = new_staff_problems(username, password, details, session=session)
    if errors:
        raise InvalidStaff(errors)
    details = details.checked()
    now = utcnow()
    staff = Staff(
        username=username.strip().lower(),
        display_name=details.display_name,
        password_hash=generate_password_hash(password),
        session_token=secrets.token_hex(16),
        is_active=details.is_active,
        created_at=now,
        updated_at=now,
    )
    session.add(staff)
    session.flush()
    _apply(staff, details, session=session, actor=actor, now=now)
    _audit(staff, AccountAction.CREATED, describe(details), actor=actor, session=session)
    return staff


def update_staff(staff: Staff, details: StaffDetails, *, session: Session, actor: str) -> Staff:
    """Change an account's details; the audit row says what changed."""
    errors = update_problems(staff, details, session=session)
    if errors:
        raise InvalidStaff(errors)
    details = details.checked()
    before = describe(details_of(staff))
    was_active = staff.is_active
    staff.display_name = details.display_name
    _apply(staff, details, session=session, actor=actor, now=utcnow())
    after = describe(details)
    if after != before:
        _audit(staff, AccountAction.UPDATED, f"{before} → {after}", actor=actor, session=session)
    if was_active and not details.is_active:
        _deactivate(staff, session=session, actor=actor)
    elif details.is_active and not was_active:
        staff.is_active = True
        _audit(staff, AccountAction.REACTIVATED, "", actor=actor, session=session)
    return staff


def deactivate_staff(staff: Staff, *, session: Session, actor: str) -> None:
    """Close the account: no login, every session ended, off the call-taker rota."""
    problem = _last_administrator(staff, session=session)
    if problem:
        raise StaffError(problem["roles"])
    if staff.is_active:
        _deactivate(staff, session=session, actor=actor)


def set_password(staff: Staff, password: str, *, session: Session, actor: str) -> None:
    """Store the new password's hash and end every session the old one opened."""
    _check_password(password)
    staff.password_hash = generate_password_hash(password)
    staff.session_token = secrets.token_hex(16)
    _audit(staff, AccountAction.PASSWORD_SET, "", actor=actor, session=session)


def authenticate(username: str, password: str, *, session: Session) -> Staff | None:
    """The staff member when the password is right; None otherwise.

    Raises AccountDeactivated for a right password on a closed account. An unknown
    username costs a hash check too, so the time taken does not tell which names exist.
    """
    staff = find_staff(username, session=session)
    if staff is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(staff.password_hash, password):
        return None
    if not staff.is_active:
        raise AccountDeactivated(f"the account {staff.username!r} is deactivated")
    return staff


def details_of(staff: Staff) -> StaffDetails:
    profile = staff.call_taker
    return StaffDetails(
        display_name=staff.display_name,
        roles=staff.role_set,
        languages=tuple(profile.languages) if profile else (),
        skills=tuple(profile.skills) if profile else (),
        phone_number=profile.phone_number if profile else None,
        client_identity=profile.client_identity if profile else None,
        is_active=staff.is_active,
        department_code=staff.department_code,
    )


def describe(details: StaffDetails) -> str:
    """One line for the account's audit trail."""
    parts = [
        f"name {details.display_name}",
        "roles " + (",".join(sorted(r.value for r in details.roles)) or "none"),
    ]
    if details.languages:
        parts.append("languages " + ",".join(details.languages))
    if details.skills:
        parts.append("skills " + ",".join(details.skills))
    if details.phone_number:
        parts.append(f"phone {details.phone_number}")
    if details.client_identity:
        parts.append(f"client {details.client_identity}")
    if details.department_code:
        parts.append(f"department {details.department_code}")
    return "; ".join(parts)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidStaff({"password": f"at least {MIN_PASSWORD_LENGTH} characters"})
    if len(password) > 200:
        raise InvalidStaff({"password": "at most 200 characters"})


def _identity_taken(
    details: StaffDetails, staff: Staff | None, *, session: Session
) -> dict[str, str]:
    if details.client_identity is None:
        return {}
    owner = session.scalar(
        select(CallTaker.staff_id).where(CallTaker.client_identity == details.client_identity)
    )
    if owner is not None and (staff is None or owner != staff.id):
        return {"client_identity": f"{details.client_identity!r} belongs to someone else"}
    return {}


def _last_administrator(staff: Staff, *, session: Session) -> dict[str, str]:
    """Refuse to close or demote the last active administrator: nobody could log in to
    manage the accounts any more."""
    if not (staff.is_active and staff.has_role(Role.ADMINISTRATOR)):
        return {}
    others = session.scalar(
        select(func.count())
        .select_from(StaffRole)
        .join(Staff, Staff.id == StaffRole.staff_id)
        .where(
            StaffRole.role == Role.ADMINISTRATOR,
            Staff.is_active.is_(True),
            Staff.id != staff.id,
        )
    )
    if others:
        return {}
    return {"roles": f"{staff.username} is the last active administrator"}


def _apply(
    staff: Staff, details: StaffDetails, *, session: Session, actor: str, now: datetime
) -> None:
    staff.department_code = details.department_code
    held = {grant.role: grant for grant in staff.roles}
    for role in details.roles - held.keys():
        staff.roles.append(StaffRole(role=role, granted_at=now, granted_by=actor))
    for role in held.keys() - details.roles:
        staff.roles.remove(held[role])
    profile = staff.call_taker
    if profile is None and (
        Role.CALL_TAKER in details.roles
        or details.languages
        or details.phone_number
        or details.client_identity
    ):
        profile = staff.call_taker = CallTaker(
            state=CallTakerState.OFFLINE, state_changed_at=now, languages=[], skills=[]
        )
    if profile is not None:
        profile.languages = list(details.languages)
        profile.skills = list(details.skills)
        profile.phone_number = details.phone_number
        profile.client_identity = details.client_identity
        if Role.CALL_TAKER not in details.roles:
            _force_offline(staff, "no longer a call-taker", session=session, actor=actor)
    session.flush()


def _deactivate(staff: Staff, *, session: Session, actor: str) -> None:
    staff.is_active = False
    staff.session_token = secrets.token_hex(16)
    _force_offline(staff, "account deactivated", session=session, actor=actor)
    _audit(staff, AccountAction.DEACTIVATED, "", actor=actor, session=session)


def _force_offline(staff: Staff, reason: str, *, session: Session, actor: str) -> None:
    """The one move outside TRANSITIONS: an account closed (or a call-taker role taken
    away) goes offline whatever its state, so routing never offers it a call again."""
    profile = staff.call_taker
    if profile is not None and profile.state is not CallTakerState.OFFLINE:
        _record(profile, CallTakerState.OFFLINE, session=session, actor=actor, reason=reason)


def _audit(
    staff: Staff, action: AccountAction, detail: str, *, actor: str, session: Session
) -> None:
    session.add(StaffAccountChange(staff_id=staff.id, actor=actor, action=action, detail=detail))


# -- the call-taker's state ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockedCallTaker:
    """A call-taker's row read again under its row lock, with what a state change checks of
    the account (``lock_call_taker``): one statement, where loading the account, its roles
    and its profile takes four."""

    profile: CallTaker
    username: str
    is_active: bool
    is_call_taker: bool


def change_state(
    staff: Staff,
    to_state: CallTakerState,
    *,
    session: Session,
    actor: str,
    reason: str = "",
    call_sid: str | None = None,
    wrap_up_seconds: int = DEFAULT_WRAP_UP_SECONDS,
    now: datetime | None = None,
) -> CallTakerStateChange | None:
    """Move a call-taker to ``to_state`` and record who, when and why.

    IllegalTransition when the move is not in TRANSITIONS; StaffError for an account that
    is closed or not a call-taker. Going where they already are is a no-op (None), except
    away with a new reason. An expired wrap-up is ended first, so the move starts from
    where the call-taker really is.
    """
    now = now or utcnow()
    profile = _locked_profile(staff, session=session)
    return _change(
        profile,
        to_state,
        username=staff.username,
        is_active=staff.is_active,
        session=session,
        actor=actor,
        reason=reason,
        call_sid=call_sid,
        wrap_up_seconds=wrap_up_seconds,
        now=now,
    )


def lock_call_taker(staff_id: int, *, session: Session) -> LockedCallTaker | None:
    """The call-taker ``staff_id`` read again under a row lock (PostgreSQL; SQLite has one
    writer at a time), with their account's standing; None when there is no such profile.

    For the moves the hotline makes (a leg answered, a call over): the row is what decides
    whether the move still applies, so it is locked before it is looked at.
    """
    row = session.execute(_LOCK_CALL_TAKER, {"b_staff_id": staff_id}).first()
    if row is None:
        return None
    profile, username, is_active, is_call_taker = row
    return LockedCallTaker(profile, username, bool(is_active), bool(is_call_taker))


def change_locked_state(
    locked: LockedCallTaker,
    to_state: CallTakerState,
    *,
    session: Session,
    actor: str,
    reason: str = "",
    call_sid: str | None = None,
    wrap_up_seconds: int = DEFAULT_WRAP_UP_SECONDS,
    now: datetime | None = None,
) -> CallTakerStateChange | None:
    """``change_state`` for a call-taker read by ``lock_call_taker`` (same rules, same
    errors, same history)."""
    if not locked.is_call_taker:
        raise StaffError(f"{locked.username} is not a call-taker")
    return _change(
        locked.profile,
        to_state,
        username=locked.username,
        is_active=locked.is_active,
        session=session,
        actor=actor,
        reason=reason,
        call_sid=call_sid,
        wrap_up_seconds=wrap_up_seconds,
        now=now,
    )


def ring_if_available(
    *,
    session: Session,
    staff_id: int,
    call_sid: str,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Available → ringing for ``call_sid``, only if the call-taker is available now: the
    dispatcher's claim. False (nothing written) when they are not, or no longer.

    The move ``change_state(staff, RINGING, call_sid=...)`` makes, as one UPDATE that
    matches only an available, active call-taker, and its history row: of two dispatchers
    that chose the same call-taker only one matches (PostgreSQL re-reads the row once the
    other's transaction ends; SQLite has one writer at a time). Nothing is read first, so
    a dispatcher holds the write lock (SQLite) for two statements rather than seven.
    """
    now = now or utcnow()
    connection = session.connection()
    claim = {"b_staff_id": staff_id, "b_call_sid": call_sid, "b_now": now}
    if connection.dialect.name == "postgresql":  # one round trip: the UPDATE in a CTE
        history = {"b_actor": actor, "b_reason": reason.strip()}
        if connection.execute(_RING_AND_RECORD, claim | history).first() is None:
            return False
    else:
        if not connection.execute(_RING_IF_AVAILABLE, claim).rowcount:
            return False
        connection.execute(
            _STATE_CHANGE,
            {
                "staff_id": staff_id,
                "at": now,
                "actor": actor,
                "from_state": CallTakerState.AVAILABLE,
                "to_state": CallTakerState.RINGING,
                "reason": reason.strip(),
                "call_sid": call_sid,
            },
        )
    loaded = session.identity_map.get(session.identity_key(CallTaker, staff_id))
    if loaded is not None:  # a profile this session read before is stale now
        session.expire(loaded)
    return True


def is_wrap_up_over(profile: CallTaker, now: datetime) -> bool:
    """The pure check: a call-taker in wrap-up whose time is up."""
    return (
        profile.state is CallTakerState.WRAP_UP
        and profile.wrap_up_until is not None
        and profile.wrap_up_until <= now
    )


def end_wrap_up_if_over(
    profile: CallTaker, *, session: Session, now: datetime | None = None
) -> CallTakerStateChange | None:
    """End an expired wrap-up (they become available, idle since the wrap-up ended)."""
    now = now or utcnow()
    if not is_wrap_up_over(profile, now):
        return None
    return _record(
        profile,
        CallTakerState.AVAILABLE,
        session=session,
        actor=f"{SYSTEM}:wrap-up",
        reason="wrap-up time is over",
        now=now,
        became_free_at=profile.wrap_up_until,
    )


def end_expired_wrap_ups(*, session: Session, now: datetime | None = None) -> list[CallTaker]:
    """The sweep: every call-taker whose wrap-up time is up becomes available."""
    now = now or utcnow()
    due = session.scalars(
        select(CallTaker)
        .where(CallTaker.state == CallTakerState.WRAP_UP, CallTaker.wrap_up_until <= now)
        .with_for_update(skip_locked=True)
    ).all()
    return [profile for profile in due if end_wrap_up_if_over(profile, session=session, now=now)]


def list_available_call_takers(*, session: Session, now: datetime | None = None) -> list[CallTaker]:
    """Who may be rung now, longest idle first: active call-takers in the available state
    (an expired wrap-up is ended on the way)."""
    return list_call_takers(states=(CallTakerState.AVAILABLE,), session=session, now=now)


def list_call_takers(
    *, states: Iterable[CallTakerState], session: Session, now: datetime | None = None
) -> list[CallTaker]:
    """Active call-takers in any of ``states``, longest idle first (e.g. everyone on duty,
    for routing to know that a Tibetan speaker is busy rather than absent). An expired
    wrap-up is ended first."""
    now = now or utcnow()
    end_expired_wrap_ups(session=session, now=now)
    return list(
        session.scalars(
            select(CallTaker)
            .join(Staff, Staff.id == CallTaker.staff_id)
            .join(StaffRole, StaffRole.staff_id == Staff.id)
            .where(
                CallTaker.state.in_(list(states)),
                Staff.is_active.is_(True),
                StaffRole.role == Role.CALL_TAKER,
            )
            .order_by(CallTaker.idle_since, CallTaker.staff_id)
        )
    )


def call_takers_for_routing(
    *, states: Iterable[CallTakerState], session: Session, now: datetime | None = None
) -> list[Row]:
    """``list_call_takers`` as plain rows, for the dispatcher's hot path: one statement and
    no ORM objects. Each row has ``staff_id``, ``languages``, ``skills``, ``state``,
    ``idle_since``, ``state_changed_at``, ``away_reason``, ``wrap_up_until`` and where the
    call-taker is rung: ``phone_number``, ``client_identity``, ``display_name``.

    Expired wrap-ups are ended first, as ``list_call_takers`` does; they are seen in the
    rows read (wrap-ups are always read), so ending them costs nothing when none is due.
    """
    now = now or utcnow()
    wanted = frozenset(states)
    query = _routing_query(wanted | {CallTakerState.WRAP_UP})
    rows = session.connection().execute(query).all()
    if any(is_wrap_up_over(row, now) for row in rows):  # type: ignore[arg-type]
        end_expired_wrap_ups(session=session, now=now)
        rows = session.connection().execute(query).all()
    return [row for row in rows if row.state in wanted]


def ring_address(staff_id: int, *, session: Session) -> Row | None:
    """Where a call-taker is rung: ``staff_id``, ``phone_number``, ``client_identity`` and
    ``display_name`` (None: no call-taker profile). A plain read, taken before a claim."""
    return session.connection().execute(_RING_ADDRESS, {"b_staff_id": staff_id}).first()


def _holds_call_taker_role(staff_id: object) -> Exists:
    return (
        select(StaffRole.staff_id)
        .where(StaffRole.staff_id == staff_id, StaffRole.role == Role.CALL_TAKER)
        .exists()
    )


# The hot path's statements, built once (building a statement costs more than running it).
_STAFF_ID = bindparam("b_staff_id")
_LOCK_CALL_TAKER = (
    select(CallTaker, Staff.username, Staff.is_active, _holds_call_taker_role(_STAFF_ID))
    .join(Staff, Staff.id == CallTaker.staff_id)
    .where(CallTaker.staff_id == _STAFF_ID)
    .with_for_update(of=CallTaker)
    .execution_options(populate_existing=True)
)
_LOCK_PROFILE = (
    select(CallTaker)
    .where(CallTaker.staff_id == _STAFF_ID)
    .with_for_update()
    .execution_options(populate_existing=True)
)
_RING_IF_AVAILABLE = (
    update(CallTaker)
    .where(
        CallTaker.staff_id == _STAFF_ID,
        CallTaker.state == CallTakerState.AVAILABLE,
        select(Staff.id).where(Staff.id == _STAFF_ID, Staff.is_active.is_(True)).exists(),
        _holds_call_taker_role(_STAFF_ID),
    )
    .values(
        state=CallTakerState.RINGING,
        state_changed_at=bindparam("b_now"),
        away_reason=None,
        call_sid=bindparam("b_call_sid"),
        wrap_up_until=None,
    )
)
_STATE_CHANGE = insert(CallTakerStateChange)
_CLAIMED = _RING_IF_AVAILABLE.returning(
    CallTaker.staff_id, CallTaker.call_sid, CallTaker.state_changed_at
).cte("claimed")
_CHANGES = CallTakerStateChange.__table__.c
_RING_AND_RECORD = (  # PostgreSQL: the claim and its history row in one statement
    insert(CallTakerStateChange)
    .from_select(
        ["staff_id", "at", "actor", "from_state", "to_state", "reason", "call_sid"],
        select(
            _CLAIMED.c.staff_id,
            _CLAIMED.c.state_changed_at,
            bindparam("b_actor", type_=_CHANGES.actor.type),
            literal(CallTakerState.AVAILABLE, _CHANGES.from_state.type),
            literal(CallTakerState.RINGING, _CHANGES.to_state.type),
            bindparam("b_reason", type_=_CHANGES.reason.type),
            _CLAIMED.c.call_sid,
        ),
    )
    .add_cte(_CLAIMED)
    .returning(CallTakerStateChange.id)  # a row when claimed (INSERT's rowcount is unreliable)
)
_RING_ADDRESS = (
    select(
        CallTaker.staff_id, CallTaker.phone_number, CallTaker.client_identity, Staff.display_name
    )
    .join(Staff, Staff.id == CallTaker.staff_id)
    .where(CallTaker.staff_id == _STAFF_ID)
)


@functools.cache
def _routing_query(states: frozenset[CallTakerState]) -> Select:
    return (
        select(
            CallTaker.staff_id,
            CallTaker.languages,
            CallTaker.skills,
            CallTaker.state,
            CallTaker.idle_since,
            CallTaker.state_changed_at,
            CallTaker.away_reason,
            CallTaker.wrap_up_until,
            CallTaker.phone_number,
            CallTaker.client_identity,
            Staff.display_name,
        )
        .join(Staff, Staff.id == CallTaker.staff_id)
        .where(
            CallTaker.state.in_(sorted(states)),
            Staff.is_active.is_(True),
            _holds_call_taker_role(CallTaker.staff_id),
        )
        .order_by(CallTaker.idle_since, CallTaker.staff_id)
    )


def _locked_profile(staff: Staff, *, session: Session) -> CallTaker:
    """The call-taker row, read again under a row lock (PostgreSQL) so that two moves at
    once (the console and a ring timeout) take turns and the later one sees the first."""
    if staff.call_taker is None or not staff.has_role(Role.CALL_TAKER):
        raise StaffError(f"{staff.username} is not a call-taker")
    return session.scalars(_LOCK_PROFILE, {"b_staff_id": staff.id}).one()


def _change(
    profile: CallTaker,
    to_state: CallTakerState,
    *,
    username: str,
    is_active: bool,
    session: Session,
    actor: str,
    reason: str,
    call_sid: str | None,
    wrap_up_seconds: int,
    now: datetime,
) -> CallTakerStateChange | None:
    """The rules of ``change_state`` for a profile read under its row lock."""
    end_wrap_up_if_over(profile, session=session, now=now)
    if to_state is CallTakerState.AWAY and not reason.strip():
        raise StaffError("going away needs a reason")
    if to_state is profile.state and (
        to_state is not CallTakerState.AWAY or reason.strip() == (profile.away_reason or "")
    ):
        return None
    if to_state is not CallTakerState.OFFLINE and not is_active:
        raise StaffError(f"the account {username!r} is deactivated")
    if to_state not in TRANSITIONS[profile.state]:
        raise IllegalTransition(username, profile.state, to_state)
    return _record(
        profile,
        to_state,
        session=session,
        actor=actor,
        reason=reason,
        call_sid=call_sid,
        wrap_up_seconds=wrap_up_seconds,
        now=now,
    )


def _record(
    profile: CallTaker,
    to_state: CallTakerState,
    *,
    session: Session,
    actor: str,
    reason: str = "",
    call_sid: str | None = None,
    wrap_up_seconds: int = DEFAULT_WRAP_UP_SECONDS,
    now: datetime | None = None,
    became_free_at: datetime | None = None,
) -> CallTakerStateChange:
    now = now or utcnow()
    from_state = profile.state
    change = CallTakerStateChange(
        staff_id=profile.staff_id,
        at=now,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        reason=reason.strip(),
        call_sid=call_sid or profile.call_sid,
    )
    session.add(change)
    profile.state = to_state
    profile.state_changed_at = became_free_at or now
    profile.away_reason = reason.strip()[:200] if to_state is CallTakerState.AWAY else None
    if to_state in (CallTakerState.RINGING, CallTakerState.ON_CALL):
        profile.call_sid = call_sid or profile.call_sid
    elif to_state is not CallTakerState.WRAP_UP:
        profile.call_sid = None
    profile.wrap_up_until = (
        now + timedelta(seconds=wrap_up_seconds) if to_state is CallTakerState.WRAP_UP else None
    )
    # Idle since they last became free; a ring that came to nothing does not reset it, so
    # they keep their place at the front.
    if to_state is CallTakerState.AVAILABLE and (
        from_state is not CallTakerState.RINGING or profile.idle_since is None
    ):
        profile.idle_since = became_free_at or now
    session.flush()
    return change
