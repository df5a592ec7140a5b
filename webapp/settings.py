"""Typed settings read from the environment and checked once, at start-up.

Every variable is listed in README.md ("Configuration") and ``.env.example``. A bad or
missing value stops the app with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflows.front_door import FrontDoorMode
from tickets.calendar import parse_office_hours
from tickets.phones import to_e164
from tickets.survey_schedule import load_survey_rules

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
TWILIO_API = "https://api.twilio.com"
ENVIRONMENTS = ("development", "test", "production")

# The numbers your carrier routes to the local emergency and utility centres. The
# defaults are placeholders in Lhasa's area code: set the real ones in production.
EMERGENCY_DEFAULTS = {
    "fire": ("EMERGENCY_FIRE_NUMBER", "+868910000119"),
    "medical": ("EMERGENCY_MEDICAL_NUMBER", "+868910000120"),
    "police": ("EMERGENCY_POLICE_NUMBER", "+868910000110"),
    "traffic": ("EMERGENCY_TRAFFIC_NUMBER", "+868910000122"),
    "utility": ("UTILITY_LINE_NUMBER", "+868910012345"),
}


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    secret_key: str = "dev-only-secret"
    database_url: str = f"sqlite:///{INSTANCE_DIR / 'hotline.db'}"
    redis_url: str | None = None
    huey_sqlite_path: str = str(INSTANCE_DIR / "huey.db")
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_key: str = ""
    twilio_api_secret: str = ""
    twilio_api_base_url: str = TWILIO_API
    twilio_timeout_seconds: float = 10.0
    skip_signature_check: bool = False
    gateway: str = "console"
    hotline_number: str = "+868916312345"
    public_base_url: str = "http://127.0.0.1:5000"
    emergency_numbers: Mapping[str, str] = field(
        default_factory=lambda: {line: number for line, (_, number) in EMERGENCY_DEFAULTS.items()}
    )
    front_door_mode: FrontDoorMode = FrontDoorMode.MENU
    timezone: str = "Asia/Shanghai"
    hold_music_url: str = ""  # empty: the app's own 30 s clip (ivr/static/hold-music.mp3)
    recordings_dir: str = str(INSTANCE_DIR / "recordings")
    journal_dir: str = str(INSTANCE_DIR / "journal")
    journal_drain: str = "inline"  # or "background": a drainer stores the journal
    log_level: str = "INFO"
    wrap_up_seconds: int = 30
    staff_session_hours: int = 12
    ring_timeout_seconds: int = 20  # a call-taker's ring, then the next call-taker
    language_wait_seconds: int = 60  # a caller waits this long for a busy speaker
    callback_offer_after_seconds: int = 120  # then the queue's callback offer (0: never)
    # Work orders: the clocks' limits and calendar (empty: the files shipped in tickets/data)
    clock_limits_file: str = ""
    calendar_overrides_file: str = ""
    office_hours: str = ""  # e.g. "09:00-12:00,13:30-17:30"; empty: the calendar's default
    # SMS: "twilio" sends through Twilio's Messages API, "console" logs them (development)
    sms_sender: str = "console"
    sms_from_number: str = ""  # TWILIO_SMS_FROM: the sender number, or
    sms_messaging_service_sid: str = ""  # TWILIO_MESSAGING_SERVICE_SID
    floor_manager_sms_number: str = ""  # who gets the escalations (督办) by SMS
    # Survey calls (回访): the pace of outbound calls and the calling-hours rules
    survey_calls_per_second: float = 1.0  # Twilio's default for an account
    survey_rules_file: str = ""  # empty: tickets/data/survey_rules.toml

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def webhook_auth_token(self) -> str:
        """The token Twilio signs webhooks with; a fixed one in development and tests."""
        return self.twilio_auth_token or "development-auth-token"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL, not {value!r}")
    return value.rstrip("/")


def _number(env: Mapping[str, str], name: str, default: str, *, production: bool = False) -> str:
    raw = env.get(name, "").strip()
    if production and not raw:
        raise SettingsError(f"{name} is required when HOTLINE_ENV=production")
    raw = raw or default
    number = to_e164(raw)
    if number is None or not raw.startswith("+"):
        raise SettingsError(f"{name} must be a phone number in E.164 form (+86...), not {raw!r}")
    return number


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError as error:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from error
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _existing_file(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if raw and not Path(raw).is_file():
        raise SettingsError(f"{name} names no file: {raw!r}")
    return raw


def _survey_rate(env: Mapping[str, str]) -> float:
    raw = env.get("SURVEY_CALLS_PER_SECOND", "").strip()
    try:
        rate = float(raw) if raw else Settings.survey_calls_per_second
    except ValueError as error:
        raise SettingsError(f"SURVEY_CALLS_PER_SECOND must be a number, not {raw!r}") from error
    if not 0 < rate <= 100:
        raise SettingsError(f"SURVEY_CALLS_PER_SECOND must be above 0 and at most 100, not {raw}")
    return rate


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings; raises SettingsError naming the bad variable."""
    env = os.environ if env is None else env
    environment = _choice(env, "HOTLINE_ENV", "development", ENVIRONMENTS)
    production = environment == "production"

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if production and not value:
            raise SettingsError(f"{name} is required when HOTLINE_ENV=production")
        return value

    account_sid = required("TWILIO_ACCOUNT_SID")
    auth_token = required("TWILIO_AUTH_TOKEN")
    if account_sid and not (account_sid.startswith("AC") and len(account_sid) == 34):
        raise SettingsError("TWILIO_ACCOUNT_SID must look like AC followed by 32 characters")
    skip = _flag(env, "TWILIO_SKIP_SIGNATURE")
    if skip and production:
        raise SettingsError("TWILIO_SKIP_SIGNATURE may not be set when HOTLINE_ENV=production")
    gateway = _choice(
        env, "TWILIO_GATEWAY", "twilio" if account_sid else "console", ("twilio", "console")
    )
    if production and gateway != "twilio":
        raise SettingsError("TWILIO_GATEWAY must be twilio when HOTLINE_ENV=production")
    if gateway == "twilio" and not account_sid:
        raise SettingsError("TWILIO_GATEWAY=twilio needs TWILIO_ACCOUNT_SID")
    secret_key = required("SECRET_KEY") or Settings.secret_key
    public_base_url = _url(
        env, "PUBLIC_BASE_URL", required("PUBLIC_BASE_URL") or Settings.public_base_url
    )
    timezone = env.get("HOTLINE_TIMEZONE", "").strip() or Settings.timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise SettingsError(f"HOTLINE_TIMEZONE is not a known time zone: {timezone!r}") from error
    try:
        timeout = float(
            env.get("TWILIO_TIMEOUT_SECONDS", "").strip() or Settings.twilio_timeout_seconds
        )
    except ValueError as error:
        raise SettingsError("TWILIO_TIMEOUT_SECONDS must be a number of seconds") from error
    if not 0 < timeout <= 60:
        raise SettingsError("TWILIO_TIMEOUT_SECONDS must be between 0 and 60")
    wrap_up_seconds = _whole_number(env, "WRAP_UP_SECONDS", Settings.wrap_up_seconds, 0, 3600)
    session_hours = _whole_number(env, "STAFF_SESSION_HOURS", Settings.staff_session_hours, 1, 168)
    ring_timeout = _whole_number(env, "RING_TIMEOUT_SECONDS", Settings.ring_timeout_seconds, 5, 120)
    language_wait = _whole_number(
        env, "LANGUAGE_WAIT_SECONDS", Settings.language_wait_seconds, 0, 3600
    )
    callback_offer_after = _whole_number(
        env, "CALLBACK_OFFER_AFTER_SECONDS", Settings.callback_offer_after_seconds, 0, 3600
    )

    limits_file = _existing_file(env, "CLOCK_LIMITS_FILE")
    overrides_file = _existing_file(env, "CALENDAR_OVERRIDES_FILE")
    office_hours = env.get("OFFICE_HOURS", "").strip()
    if office_hours:
        try:
            parse_office_hours(office_hours)
        except ValueError as error:
            raise SettingsError(f"OFFICE_HOURS: {error}") from error
    sms_from = env.get("TWILIO_SMS_FROM", "").strip()
    messaging_service = env.get("TWILIO_MESSAGING_SERVICE_SID", "").strip()
    if sms_from or (production and not messaging_service):
        sms_from = _number(env, "TWILIO_SMS_FROM", sms_from, production=production)
    if messaging_service and not (
        messaging_service.startswith("MG") and len(messaging_service) == 34
    ):
        raise SettingsError("TWILIO_MESSAGING_SERVICE_SID must look like MG and 32 characters")
    sms_sender = _choice(
        env,
        "SMS_SENDER",
        "twilio" if gateway == "twilio" and (sms_from or messaging_service) else "console",
        ("twilio", "console"),
    )
    if production and sms_sender != "twilio":
        raise SettingsError("SMS_SENDER must be twilio when HOTLINE_ENV=production")
    if sms_sender == "twilio" and not account_sid:
        raise SettingsError("SMS_SENDER=twilio needs TWILIO_ACCOUNT_SID")
    if sms_sender == "twilio" and not (sms_from or messaging_service):
        raise SettingsError("SMS_SENDER=twilio needs a sender: set TWILIO_SMS_FROM")
    floor_manager_sms = env.get("FLOOR_MANAGER_SMS_NUMBER", "").strip()
    if floor_manager_sms:
        floor_manager_sms = _number(env, "FLOOR_MANAGER_SMS_NUMBER", floor_manager_sms)
    survey_calls_per_second = _survey_rate(env)
    survey_rules_file = _existing_file(env, "SURVEY_RULES_FILE")
    if survey_rules_file:
        try:
            load_survey_rules(Path(survey_rules_file))
        except (OSError, ValueError) as error:
            raise SettingsError(f"SURVEY_RULES_FILE: {error}") from error

    return Settings(
        environment=environment,
        secret_key=secret_key,
        database_url=env.get("DATABASE_URL", "").strip() or Settings.database_url,
        redis_url=env.get("REDIS_URL", "").strip() or None,
        huey_sqlite_path=env.get("HUEY_SQLITE_PATH", "").strip() or Settings.huey_sqlite_path,
        twilio_account_sid=account_sid,
        twilio_auth_token=auth_token,
        twilio_api_key=env.get("TWILIO_API_KEY", "").strip(),
        twilio_api_secret=env.get("TWILIO_API_SECRET", "").strip(),
        twilio_api_base_url=_url(env, "TWILIO_API_BASE_URL", TWILIO_API),
        twilio_timeout_seconds=timeout,
        skip_signature_check=skip,
        gateway=gateway,
        hotline_number=_number(
            env, "HOTLINE_NUMBER", required("HOTLINE_NUMBER") or Settings.hotline_number
        ),
        public_base_url=public_base_url,
        emergency_numbers={
            line: _number(env, name, default, production=production)
            for line, (name, default) in EMERGENCY_DEFAULTS.items()
        },
        front_door_mode=FrontDoorMode(
            _choice(env, "FRONT_DOOR_MODE", "menu", tuple(m.value for m in FrontDoorMode))
        ),
        timezone=timezone,
        hold_music_url=_url(env, "HOLD_MUSIC_URL", "")
        if env.get("HOLD_MUSIC_URL", "").strip()
        else "",
        recordings_dir=env.get("RECORDINGS_DIR", "").strip() or Settings.recordings_dir,
        journal_dir=env.get("JOURNAL_DIR", "").strip() or Settings.journal_dir,
        journal_drain=_choice(env, "JOURNAL_DRAIN", "inline", ("inline", "background")),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        wrap_up_seconds=wrap_up_seconds,
        staff_session_hours=session_hours,
        ring_timeout_seconds=ring_timeout,
        language_wait_seconds=language_wait,
        callback_offer_after_seconds=callback_offer_after,
        clock_limits_file=limits_file,
        calendar_overrides_file=overrides_file,
        office_hours=office_hours,
        sms_sender=sms_sender,
        sms_from_number=sms_from,
        sms_messaging_service_sid=messaging_service,
        floor_manager_sms_number=floor_manager_sms,
        survey_calls_per_second=survey_calls_per_second,
        survey_rules_file=survey_rules_file,
    )
