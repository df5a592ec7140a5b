"""Survey calls from the app: the caller the settings choose, the schedule they configure
(calling-hours rules, the hotline's calendar and zone) and the sweep the worker runs
(``webapp.worker.place_survey_calls``, every minute)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import sessionmaker

from ivr.survey_caller import ConsoleSurveyCaller, TwilioSurveyCaller
from tickets.calendar import DEFAULT_OFFICE_HOURS, WorkingCalendar, parse_office_hours
from tickets.db import utcnow
from tickets.survey_calls import SurveyCaller
from tickets.survey_schedule import load_survey_rules
from tickets.surveys import CallPolicy, SurveyPlan, SweepCounts, sweep
from webapp.settings import Settings

SURVEY_CALLER_KEY = "hotline.survey_caller"
SURVEY_PLAN_KEY = "hotline.survey_plan"


def build_survey_caller(settings: Settings) -> SurveyCaller:
    """Twilio's Calls API when the gateway is Twilio, else the console caller."""
    if settings.gateway == "twilio":
        return TwilioSurveyCaller.from_settings(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token or None,
            api_key=settings.twilio_api_key or None,
            api_secret=settings.twilio_api_secret or None,
            api_base_url=settings.twilio_api_base_url,
            timeout_seconds=settings.twilio_timeout_seconds,
        )
    return ConsoleSurveyCaller()


def build_survey_plan(settings: Settings) -> SurveyPlan:
    """The rules file (SURVEY_RULES_FILE, else the shipped one) and the calendar the work
    orders' clocks use (HOTLINE_TIMEZONE, CALENDAR_OVERRIDES_FILE, OFFICE_HOURS)."""
    overrides = (
        {"overrides_path": Path(settings.calendar_overrides_file)}
        if settings.calendar_overrides_file
        else {}
    )
    calendar = WorkingCalendar(
        zone=settings.zone,
        office_hours=parse_office_hours(settings.office_hours)
        if settings.office_hours
        else DEFAULT_OFFICE_HOURS,
        **overrides,  # type: ignore[arg-type]
    )
    rules_file = Path(settings.survey_rules_file) if settings.survey_rules_file else None
    return SurveyPlan(rules=load_survey_rules(rules_file), calendar=calendar)


def survey_plan(app: Flask) -> SurveyPlan:
    """The app's survey schedule, built once (the voice edge passes it to
    ``tickets.surveys.record_attempt_status`` so a failed attempt is replanned at once)."""
    plan: SurveyPlan | None = app.extensions.get(SURVEY_PLAN_KEY)
    if plan is None:
        plan = app.extensions[SURVEY_PLAN_KEY] = build_survey_plan(app.config["HOTLINE_SETTINGS"])
    return plan


def run_survey_sweep(
    app: Flask,
    *,
    now_fn: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> SweepCounts:
    """One sweep with the app's database, survey caller and settings."""
    settings: Settings = app.config["HOTLINE_SETTINGS"]
    return sweep(
        sessions=sessionmaker(app.extensions["hotline.engine"], expire_on_commit=False),
        caller=app.extensions[SURVEY_CALLER_KEY],
        plan=survey_plan(app),
        public_base_url=settings.public_base_url,
        from_number=settings.hotline_number,
        policy=CallPolicy(calls_per_second=settings.survey_calls_per_second),
        now_fn=now_fn,
        sleep=sleep,
    )
