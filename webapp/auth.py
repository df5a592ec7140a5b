"""Staff logins: Flask-Login sessions, CSRF on every form, roles, and the staff pages'
database session.

Twilio's webhooks are signed instead: their blueprints are exempt from CSRF, never read
``current_user`` and so never load a staff row. A login lives in Flask's signed cookie
(HttpOnly, SameSite=Lax, Secure in production) for ``STAFF_SESSION_HOURS`` after the last
request; it carries the account's session token, so a new password or a deactivation
ends every open login at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask import Request as FlaskRequest
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import Session, joinedload, sessionmaker
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from tickets import staff as staff_store
from tickets.models import CallTakerState, Role, Staff
from webapp.settings import Settings

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
SESSIONS_KEY = "hotline.web_sessions"
# The signed-in person's row with their roles and call-taker profile, in one statement.
STAFF_WITH_PROFILE = (joinedload(Staff.roles), joinedload(Staff.call_taker))
View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


@dataclass(frozen=True)
class StaffUser:
    """The logged-in person as Flask-Login sees them: a snapshot, not a database row."""

    id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    session_token: str
    department_code: str | None = None  # a liaison's department

    is_authenticated = True
    is_active = True
    is_anonymous = False

    @classmethod
    def of(cls, staff: Staff) -> StaffUser:
        return cls(
            staff.id,
            staff.username,
            staff.display_name,
            staff.role_set,
            staff.session_token,
            staff.department_code,
        )

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def has_role(self, *roles: Role) -> bool:
        """Whether they hold any one of ``roles``."""
        return bool(self.roles.intersection(roles))

    @property
    def actor(self) -> str:
        return staff_store.staff_actor(self.id)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=200)])


def db_session() -> Session:
    """The staff pages' database session: one per request, closed (rolled back if not
    committed) when the request ends. Views commit once, when their work is done."""
    session: Session | None = g.get("web_session")
    if session is None:
        session = g.web_session = current_app.extensions[SESSIONS_KEY]()
    return session


def _close_db_session(_error: BaseException | None = None) -> None:
    session: Session | None = g.pop("web_session", None)
    if session is not None:
        session.close()


def roles_required(*roles: Role) -> Callable[[View], View]:
    """Let in a logged-in person holding any one of ``roles``: 403 for anyone else logged
    in, the login page for the anonymous. On every method, so every POST is checked."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not current_user.has_role(*roles):
                log.warning(
                    "%s was refused %s %s", current_user.actor, request.method, request.path
                )
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def landing_url(user: StaffUser) -> str:
    if user.has_role(Role.CALL_TAKER):
        return url_for("console.index")
    if user.has_role(Role.DEPARTMENT_LIAISON):
        return url_for("portal.index")
    if user.has_role(Role.REVIEWER):
        return url_for("review.objections")
    if user.has_role(Role.ADMINISTRATOR):
        return url_for("admin.list_staff")
    return url_for("auth.home")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never a redirect to somewhere else."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(landing_url(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data or ""
        try:
            staff = staff_store.authenticate(
                username, form.password.data or "", session=db_session()
            )
        except staff_store.AccountDeactivated:
            log.warning("login refused: %r is deactivated", username)
            form.form_errors.append("This account is deactivated. Ask an administrator.")
        else:
            if staff is None:
                log.warning("login failed for %r", username[:64])
                form.form_errors.append("Wrong username or password.")
            else:
                next_url = _safe_next(request.args.get("next"))
                session.clear()  # nothing from before the login survives it
                user = StaffUser.of(staff)
                login_user(user)
                session.permanent = True  # expires STAFF_SESSION_HOURS after the last request
                log.info("%s (%s) logged in", user.actor, user.username)
                return redirect(next_url or landing_url(user))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    """Log out; a call-taker who is free goes offline, so no call is routed to them."""
    user: StaffUser = current_user._get_current_object()  # current_user ends below
    db = db_session()
    staff = db.get(Staff, user.id)
    profile = staff.call_taker if staff is not None else None
    if (
        staff is not None
        and profile is not None
        and staff.has_role(Role.CALL_TAKER)
        and CallTakerState.OFFLINE in staff_store.TRANSITIONS[profile.state]
    ):
        staff_store.change_state(
            staff, CallTakerState.OFFLINE, session=db, actor=user.actor, reason="logged out"
        )
        db.commit()
    logout_user()
    session.clear()
    log.info("%s logged out", user.actor)
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    return render_template("auth/home.html")


def error_pages(blueprint: Blueprint) -> Blueprint:
    """The staff pages' own 403 and CSRF pages (the voice routes keep theirs)."""

    @blueprint.errorhandler(403)
    def forbidden(_error: Exception) -> ResponseReturnValue:
        return render_template("errors/403.html"), 403

    @blueprint.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> ResponseReturnValue:
        log.warning("CSRF check failed on %s %s: %s", request.method, request.path, error)
        return render_template("errors/csrf.html", reason=error.description), 400

    return blueprint


error_pages(bp)


class StaffSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions for the staff pages, none for Twilio's webhooks or the JSON
    API (bearer tokens).

    A webhook carries no cookie and its routes never use a session; opening one would
    build a signing serializer on every webhook (measurable on the benchmarked hot path).
    """

    def __init__(self, no_session_prefixes: tuple[str, ...]) -> None:
        self.no_session_prefix = no_session_prefixes

    def open_session(self, app: Flask, request: FlaskRequest) -> SessionMixin | None:
        if request.path.startswith(self.no_session_prefix):
            return self.null_session_class()
        return super().open_session(app, request)


def init_auth(
    app: Flask,
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    csrf_exempt: Iterable[Blueprint],
) -> None:
    """Cookies, CSRF (except on ``csrf_exempt``: Twilio's webhooks), Flask-Login and the
    login pages."""
    app.config.update(
        SESSION_COOKIE_NAME="hotline_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.staff_session_hours),
        # A console stays open all shift: a form's token lives as long as the login.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions[SESSIONS_KEY] = sessions
    app.teardown_appcontext(_close_db_session)
    app.session_interface = StaffSessionInterface(no_session_prefixes=("/voice/", "/api/"))

    csrf = CSRFProtect(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)

    login_manager = LoginManager()
    # What LoginManager.init_app does, less its after_request hook: that hook reads the
    # session on every response (Twilio's included, which then carry "Vary: Cookie") to
    # refresh a remember-me cookie, and the staff pages have no remember-me.
    app.login_manager = login_manager  # type: ignore[attr-defined]
    app.context_processor(lambda: {"current_user": current_user})
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see this page."
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_user)
    app.register_blueprint(bp)


def _load_user(user_id: str) -> StaffUser | None:
    """The person behind a session cookie, if their account is still open and their
    password has not changed since they logged in."""
    raw_id, _, token = user_id.partition(":")
    if not raw_id.isdigit() or not token:
        return None
    staff = db_session().get(Staff, int(raw_id), options=STAFF_WITH_PROFILE)
    if staff is None or not staff.is_active:
        return None
    if not secrets.compare_digest(staff.session_token, token):
        return None
    # Held for the request: the session's identity map keeps rows only while something
    # refers to them, and the views read this row again (``get`` then costs no query).
    g.signed_in_staff = staff
    return StaffUser.of(staff)
