"""When the survey calls: the first call planned inside calling hours (time zone, holidays)
when the worker first sees an answered order, the order moved to CALLBACK once, numbers
that must not be called cancelled, due calls after hours moved instead of placed, failed
attempts retried 2 h apart inside calling hours and then the SMS fallback; the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from tests.support.orders import import_demo_directory
from tests.test_survey_calls import (  # the fake provider and the order helpers
    CITIZEN,
    T0,
    Clock,
    FakeCaller,
    answered_order,
    attempts_of,
    default_plan,
    report,
    run,
    survey_of,
)
from tickets import surveys
from tickets.calendar import WorkingCalendar
from tickets.models import (
    ContactPreference,
    SmsMessage,
    SmsPurpose,
    SmsStatus,
    SurveyStatus,
    WorkOrder,
    WorkOrderState,
)
from tickets.survey_schedule import SurveyRules
from tickets.surveys import SurveyPlan, claim_due, plan_new
from webapp.settings import SettingsError
from webapp.surveys import build_survey_plan

BEIJING = ZoneInfo("Asia/Shanghai")


def local(*args: int, zone: ZoneInfo = BEIJING) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


@pytest.fixture
def directory(db) -> None:
    import_demo_directory(db)


def plan(db, now: datetime, survey_plan: SurveyPlan | None = None) -> surveys.Planned:
    survey_plan = survey_plan or default_plan()
    return plan_new(db, now=now, rules=survey_plan.rules, calendar=survey_plan.calendar)


def test_an_order_answered_in_the_morning_is_called_ten_minutes_later(db, directory) -> None:
    order = answered_order(db, at=local(2026, 11, 24, 10, 0))

    planned = plan(db, local(2026, 11, 24, 10, 1))

    survey = survey_of(db, order)
    assert planned.planned == [survey.id]
    assert survey.next_attempt_at == local(2026, 11, 24, 10, 10)
    order = db.get_one(WorkOrder, order.id)
    assert order.state is WorkOrderState.CALLBACK
    assert [h.actor for h in order.history if h.action == "start_callback"] == ["system:worker"]

    assert plan(db, local(2026, 11, 24, 10, 2)).planned == []  # never twice


def test_an_order_answered_before_the_national_day_is_called_after_it(db, directory) -> None:
    order = answered_order(db, at=local(2026, 9, 30, 19, 55))

    plan(db, local(2026, 9, 30, 19, 56))

    assert survey_of(db, order).next_attempt_at == local(2026, 10, 8, 9, 0)


def test_calling_hours_are_the_hotlines_local_time_whatever_the_servers(db, directory) -> None:
    urumqi = ZoneInfo("Asia/Urumqi")  # UTC+6: 09:00 there is 11:00 in Beijing
    order = answered_order(db, at=local(2026, 11, 24, 8, 0))
    survey_plan = SurveyPlan(SurveyRules(), WorkingCalendar(zone=urumqi))

    plan(db, local(2026, 11, 24, 8, 1), survey_plan)

    assert survey_of(db, order).next_attempt_at == local(2026, 11, 24, 9, 0, zone=urumqi)
    assert survey_of(db, order).next_attempt_at == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_a_number_on_the_do_not_call_list_is_never_called(db, directory) -> None:
    db.add(ContactPreference(number=CITIZEN, no_calls=True, updated_by="staff:1"))
    db.commit()
    order = answered_order(db)

    planned = plan(db, T0)

    survey = survey_of(db, order)
    assert planned.cancelled == [survey.id]
    assert (survey.status, survey.next_attempt_at) == (SurveyStatus.CANCELLED, None)
    assert db.get_one(WorkOrder, order.id).state is WorkOrderState.ANSWERED  # for a person


def test_an_order_without_a_number_gets_no_call(db, directory) -> None:
    order = answered_order(db, caller_number=None)

    plan(db, T0)

    assert survey_of(db, order).status is SurveyStatus.CANCELLED
    assert db.get_one(WorkOrder, order.id).state is WorkOrderState.ANSWERED


def test_a_due_call_found_after_hours_is_moved_to_the_morning(db, sessions, directory) -> None:
    order = answered_order(db, at=local(2026, 11, 24, 19, 45))
    plan(db, local(2026, 11, 24, 19, 46))  # due 19:55
    caller = FakeCaller(clock=Clock(local(2026, 11, 24, 20, 30)))

    counts = run(sessions, caller, Clock(local(2026, 11, 24, 20, 30)))

    assert counts.claimed == 0 and caller.creates == []
    assert survey_of(db, order).next_attempt_at == local(2026, 11, 25, 9, 0)
    with sessions() as session:  # nothing is claimed until then
        assert (
            claim_due(
                session,
                now=local(2026, 11, 25, 8, 59),
                owner="w",
                limit=5,
                lease=timedelta(minutes=1),
                plan=default_plan(),
            )
            == []
        )


def test_failed_attempts_are_retried_2h_apart_inside_hours_then_texted(
    db, sessions, directory
) -> None:
    order = answered_order(db, at=local(2026, 11, 24, 17, 50), confidential=True)
    clock = Clock(local(2026, 11, 24, 18, 0))
    caller = FakeCaller(clock=clock)
    expected = [local(2026, 11, 24, 18, 0), local(2026, 11, 25, 9, 0), local(2026, 11, 25, 11, 0)]

    for number, at in enumerate(expected, start=1):
        clock.at = at
        assert run(sessions, caller, clock)["placed"] == 1, number
        attempt = attempts_of(db, survey_of(db, order))[-1]
        assert (attempt.number, attempt.placed_at) == (number, at)
        report(db, attempt, "no-answer" if number != 2 else "busy", at=at + timedelta(seconds=40))
        clock.advance(minutes=1)
        run(sessions, caller, clock)  # settles the failed attempt

    survey = survey_of(db, order)
    assert (survey.status, survey.attempts) == (SurveyStatus.SMS_SENT, 3)
    sms = db.get_one(SmsMessage, survey.sms_message_id)
    order = db.get_one(WorkOrder, order.id)
    assert (sms.purpose, sms.status, sms.to_number) == (
        SmsPurpose.SURVEY,
        SmsStatus.PENDING,
        CITIZEN,
    )
    assert sms.dedupe_key == f"survey:{survey.id}" and order.number in sms.body
    assert "回复" in sms.body and order.summary not in sms.body  # confidential: no content
    assert len(caller.placed) == 3


def test_without_the_sms_fallback_a_survey_out_of_attempts_is_cancelled(
    db, sessions, directory
) -> None:
    order = answered_order(db)
    clock = Clock(T0)
    caller = FakeCaller(clock=clock)
    one_try = default_plan(attempts=1, sms_fallback=False)

    run(sessions, caller, clock, plan=one_try)
    report(db, attempts_of(db, survey_of(db, order))[0], "failed")
    clock.advance(minutes=1)
    run(sessions, caller, clock, plan=one_try)

    survey = survey_of(db, order)
    assert survey.status is SurveyStatus.CANCELLED and survey.sms_message_id is None
    assert db.scalars(select(SmsMessage).where(SmsMessage.purpose == SmsPurpose.SURVEY)).all() == []


def test_an_english_caller_gets_the_english_sms() -> None:
    text = surveys.survey_sms_text("en", "2026-000123")
    assert text.startswith("12345 hotline") and "2026-000123" in text and "Reply" in text
    assert surveys.survey_sms_text("bo", "X").startswith("【12345热线】")


def test_the_survey_settings(database_url, engine, tmp_path) -> None:
    settings = make_settings(database_url)
    assert (settings.survey_calls_per_second, settings.survey_rules_file) == (1.0, "")
    assert make_settings(database_url, SURVEY_CALLS_PER_SECOND="2.5").survey_calls_per_second == 2.5
    for bad in ("0", "-1", "fast", "500"):
        with pytest.raises(SettingsError, match="SURVEY_CALLS_PER_SECOND"):
            make_settings(database_url, SURVEY_CALLS_PER_SECOND=bad)
    with pytest.raises(SettingsError, match="SURVEY_RULES_FILE"):
        make_settings(database_url, SURVEY_RULES_FILE=str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[calling_hours]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="SURVEY_RULES_FILE"):
        make_settings(database_url, SURVEY_RULES_FILE=str(broken))
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[calling_hours]\nhours = "10:00-12:00"\nweekends = false\npublic_holidays = false\n'
        '[attempts]\nmax = 2\nmin_gap = "3h"\nsettle_delay = "0m"\nsms_fallback = false\n',
        encoding="utf-8",
    )
    built = build_survey_plan(make_settings(database_url, SURVEY_RULES_FILE=str(rules)))
    assert (built.rules.attempts, built.rules.min_gap) == (2, timedelta(hours=3))
    assert built.calendar.zone == BEIJING
