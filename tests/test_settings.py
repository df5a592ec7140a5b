"""Settings read from an environment mapping: defaults, production requirements, and a
``SettingsError`` naming the one variable that is wrong."""

from __future__ import annotations

import pytest

from callflows.front_door import FrontDoorMode
from webapp.settings import EMERGENCY_DEFAULTS, Settings, SettingsError, load_settings

PRODUCTION = {
    "HOTLINE_ENV": "production",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "f" * 32,
    "PUBLIC_BASE_URL": "https://hotline.example.org",
    "HOTLINE_NUMBER": "+868916312345",
    "SECRET_KEY": "a-long-random-secret",
    # The real centres' numbers: placeholders are not accepted in production.
    "EMERGENCY_FIRE_NUMBER": "+868916000119",
    "EMERGENCY_MEDICAL_NUMBER": "+868916000120",
    "EMERGENCY_POLICE_NUMBER": "+868916000110",
    "EMERGENCY_TRAFFIC_NUMBER": "+868916000122",
    "UTILITY_LINE_NUMBER": "+868916095598",
    "TWILIO_SMS_FROM": "+868916312345",
}
REQUIRED_IN_PRODUCTION = [name for name in PRODUCTION if name != "HOTLINE_ENV"]
EMERGENCY_VARIABLES = [name for name, _ in EMERGENCY_DEFAULTS.values()]
# Every variable a SettingsError may be about, to check that only the right one is named.
ALL_VARIABLES = [
    *REQUIRED_IN_PRODUCTION,
    *EMERGENCY_VARIABLES,
    "TWILIO_SKIP_SIGNATURE",
    "TWILIO_GATEWAY",
    "TWILIO_TIMEOUT_SECONDS",
    "TWILIO_API_BASE_URL",
    "FRONT_DOOR_MODE",
    "HOTLINE_TIMEZONE",
    "HOLD_MUSIC_URL",
    "LOG_LEVEL",
]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any hotline variable a developer may have set."""
    for name in [*ALL_VARIABLES, "HOTLINE_ENV", "TWILIO_API_KEY", "TWILIO_API_SECRET"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def error_for(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    return str(raised.value)


def assert_names_only(message: str, variable: str) -> None:
    assert variable in message
    others = [name for name in ALL_VARIABLES if name != variable and name not in variable]
    named = [name for name in others if name in message]
    assert not named, f"{message!r} also names {named}"


# -- defaults ---------------------------------------------------------------------------


def test_an_empty_environment_gives_the_development_defaults() -> None:
    settings = load_settings({})

    assert settings.environment == "development"
    assert settings.is_production is False
    assert settings.gateway == "console"
    assert settings.front_door_mode is FrontDoorMode.MENU
    assert settings.timezone == "Asia/Shanghai"
    assert settings.zone.key == "Asia/Shanghai"
    assert settings.twilio_timeout_seconds == 10.0
    assert settings.skip_signature_check is False
    assert settings.hotline_number == "+868916312345"
    assert settings.public_base_url == "http://127.0.0.1:5000"
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert settings.secret_key == Settings.secret_key
    assert settings.redis_url is None
    assert settings.log_level == "INFO"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.webhook_auth_token == "development-auth-token"


def test_the_default_emergency_numbers_cover_every_line_in_e164() -> None:
    settings = load_settings({})

    assert set(settings.emergency_numbers) == {"fire", "medical", "police", "traffic", "utility"}
    for number in settings.emergency_numbers.values():
        assert number.startswith("+86")


def test_blank_values_count_as_unset() -> None:
    blank = {
        name: "  "
        for name in [
            "HOTLINE_ENV",
            "PUBLIC_BASE_URL",
            "HOTLINE_NUMBER",
            "HOTLINE_TIMEZONE",
            "FRONT_DOOR_MODE",
            *EMERGENCY_VARIABLES,
        ]
    }

    assert load_settings(blank) == load_settings({})


def test_a_blank_twilio_timeout_means_the_default() -> None:
    assert load_settings({"TWILIO_TIMEOUT_SECONDS": "  "}).twilio_timeout_seconds == 10.0


def test_values_from_the_environment_are_used() -> None:
    settings = load_settings(
        {
            "FRONT_DOOR_MODE": "Direct",
            "HOTLINE_TIMEZONE": "Asia/Urumqi",
            "PUBLIC_BASE_URL": "https://hotline.example.org/",
            "HOTLINE_NUMBER": "+868916312399",
            "EMERGENCY_FIRE_NUMBER": "+868916300119",
            "TWILIO_TIMEOUT_SECONDS": "2.5",
            "TWILIO_SKIP_SIGNATURE": "yes",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )

    assert settings.front_door_mode is FrontDoorMode.DIRECT
    assert settings.timezone == "Asia/Urumqi"
    assert settings.public_base_url == "https://hotline.example.org"
    assert settings.hotline_number == "+868916312399"
    assert settings.emergency_numbers["fire"] == "+868916300119"
    assert settings.twilio_timeout_seconds == 2.5
    assert settings.skip_signature_check is True
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_the_test_environment_reads_like_development() -> None:
    settings = load_settings({"HOTLINE_ENV": "test"})

    assert settings.environment == "test"
    assert settings.is_production is False


def test_load_settings_reads_the_process_environment_when_given_nothing(
    clean_environ: pytest.MonkeyPatch,
) -> None:
    clean_environ.setenv("HOTLINE_ENV", "test")
    clean_environ.setenv("FRONT_DOOR_MODE", "direct")

    assert load_settings().front_door_mode is FrontDoorMode.DIRECT


# -- production --------------------------------------------------------------------------


def test_a_complete_production_environment_loads() -> None:
    settings = load_settings(PRODUCTION)

    assert settings.is_production is True
    assert settings.gateway == "twilio"
    assert settings.secret_key == PRODUCTION["SECRET_KEY"]
    assert settings.webhook_auth_token == PRODUCTION["TWILIO_AUTH_TOKEN"]
    assert settings.skip_signature_check is False


@pytest.mark.parametrize("variable", REQUIRED_IN_PRODUCTION)
@pytest.mark.parametrize("missing", ["absent", "blank"])
def test_production_refuses_to_start_without_each_required_variable(
    variable: str, missing: str
) -> None:
    env = dict(PRODUCTION)
    if missing == "absent":
        del env[variable]
    else:
        env[variable] = "   "

    assert_names_only(error_for(env), variable)


@pytest.mark.parametrize("variable", REQUIRED_IN_PRODUCTION)
def test_development_does_not_require_the_production_variables(variable: str) -> None:
    env = {name: value for name, value in PRODUCTION.items() if name != variable}
    env["HOTLINE_ENV"] = "development"

    assert load_settings(env).environment == "development"


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "TRUE"])
def test_production_refuses_to_skip_the_signature_check(value: str) -> None:
    assert_names_only(
        error_for({**PRODUCTION, "TWILIO_SKIP_SIGNATURE": value}), "TWILIO_SKIP_SIGNATURE"
    )


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_production_accepts_an_explicit_no_to_skipping_the_signature(value: str) -> None:
    assert (
        load_settings({**PRODUCTION, "TWILIO_SKIP_SIGNATURE": value}).skip_signature_check is False
    )


def test_a_flag_that_is_neither_true_nor_false_is_refused() -> None:
    assert_names_only(error_for({"TWILIO_SKIP_SIGNATURE": "maybe"}), "TWILIO_SKIP_SIGNATURE")


def test_production_refuses_the_console_gateway() -> None:
    assert_names_only(error_for({**PRODUCTION, "TWILIO_GATEWAY": "console"}), "TWILIO_GATEWAY")


@pytest.mark.parametrize("sid", ["AC123", "XX" + "0" * 32, "AC" + "0" * 40])
def test_a_malformed_account_sid_is_refused(sid: str) -> None:
    assert_names_only(error_for({**PRODUCTION, "TWILIO_ACCOUNT_SID": sid}), "TWILIO_ACCOUNT_SID")


def test_an_unknown_environment_name_is_refused() -> None:
    assert "HOTLINE_ENV" in error_for({"HOTLINE_ENV": "staging"})


# -- bad values --------------------------------------------------------------------------


@pytest.mark.parametrize("base", [{}, PRODUCTION], ids=["development", "production"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRONT_DOOR_MODE", "bogus"),
        ("FRONT_DOOR_MODE", "menu direct"),
        ("HOTLINE_TIMEZONE", "Mars/Olympus_Mons"),
        ("HOTLINE_TIMEZONE", "../../etc/passwd"),
        ("HOTLINE_TIMEZONE", "/etc/localtime"),
        ("HOTLINE_TIMEZONE", "UTC+8"),
        ("PUBLIC_BASE_URL", "/hotline"),
        ("PUBLIC_BASE_URL", "hotline.example.org"),
        ("PUBLIC_BASE_URL", "ftp://hotline.example.org"),
        ("PUBLIC_BASE_URL", "https://"),
        ("TWILIO_API_BASE_URL", "localhost:4010"),
        ("HOLD_MUSIC_URL", "music.mp3"),
        ("HOTLINE_NUMBER", "08916312345"),
        ("HOTLINE_NUMBER", "8916312345"),
        ("HOTLINE_NUMBER", "12345"),
        ("HOTLINE_NUMBER", "hotline"),
        ("HOTLINE_NUMBER", "+" + "8" * 30),
        ("TWILIO_TIMEOUT_SECONDS", "0"),
        ("TWILIO_TIMEOUT_SECONDS", "-5"),
        ("TWILIO_TIMEOUT_SECONDS", "60.5"),
        ("TWILIO_TIMEOUT_SECONDS", "3600"),
        ("TWILIO_TIMEOUT_SECONDS", "ten"),
        ("TWILIO_TIMEOUT_SECONDS", "nan"),
        ("TWILIO_TIMEOUT_SECONDS", "inf"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    base: dict[str, str], variable: str, value: str
) -> None:
    assert_names_only(error_for({**base, variable: value}), variable)


@pytest.mark.parametrize("variable", EMERGENCY_VARIABLES)
@pytest.mark.parametrize("value", ["119", "0891-0000119", "fire", "+"])
def test_an_emergency_number_not_in_e164_is_refused_naming_the_variable(
    variable: str, value: str
) -> None:
    assert_names_only(error_for({variable: value}), variable)


@pytest.mark.parametrize("variable", EMERGENCY_VARIABLES)
def test_an_emergency_number_in_e164_is_used_for_its_line(variable: str) -> None:
    line = next(line for line, (name, _) in EMERGENCY_DEFAULTS.items() if name == variable)

    settings = load_settings({variable: "+868916399999"})

    assert settings.emergency_numbers[line] == "+868916399999"


@pytest.mark.parametrize("value", ["0.1", "1", "60"])
def test_a_twilio_timeout_from_just_above_0_to_60_seconds_is_accepted(value: str) -> None:
    assert load_settings({"TWILIO_TIMEOUT_SECONDS": value}).twilio_timeout_seconds == float(value)


def test_a_bad_value_in_the_process_environment_is_named_too(
    clean_environ: pytest.MonkeyPatch,
) -> None:
    clean_environ.setenv("FRONT_DOOR_MODE", "voicemail")

    with pytest.raises(SettingsError, match="FRONT_DOOR_MODE"):
        load_settings()
