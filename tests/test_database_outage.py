"""A database that is briefly down loses nothing: callers are served, webhooks journaled."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ivr.gateway import ConsoleGateway
from tests.conftest import make_settings
from tests.support.webhooks import TwilioSender, call_params, new_call_sid
from tickets.models import Call, CallEvent, WorkOrder
from webapp import create_app
from webapp.drainer import drain_all


def test_webhooks_are_answered_and_journaled_while_the_database_is_down(
    tmp_path: Path, settings, app, db
):
    journal_dir = str(tmp_path / "journal")
    down = make_settings(f"sqlite:///{tmp_path}/missing/dir/hotline.db", JOURNAL_DIR=journal_dir)
    gateway = ConsoleGateway()
    outage_app = create_app(down, gateway=gateway)
    twilio = TwilioSender(
        outage_app.test_client(), settings.webhook_auth_token, settings.public_base_url
    )
    sid = new_call_sid()

    incoming = twilio.post("/voice/incoming", call_params(sid, CallStatus="ringing"))
    menu = twilio.post("/voice/step/menu?lang=zh&try=1", call_params(sid, Digits="9"))
    fire = twilio.post("/voice/step/emergency?lang=zh&try=1", call_params(sid, Digits="1"))

    for response in (incoming, menu, fire):
        assert response.status_code == 200 and b"<Response>" in response.data
    assert b"<Gather" in incoming.data and b"119" in fire.data
    assert [p.to_number for p in gateway.placed] == ["+868910000119"]  # rung regardless

    live = create_app(
        make_settings(settings.database_url, JOURNAL_DIR=journal_dir), gateway=ConsoleGateway()
    )
    try:
        assert drain_all(live) == (3, 0)
        assert drain_all(live) == (0, 0)
    finally:
        live.extensions["hotline.engine"].dispose()
        outage_app.extensions["hotline.engine"].dispose()
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.front_door_path == ">greeting>menu:9>emergency:fire"
    assert db.scalar(select(WorkOrder).where(WorkOrder.call_sid == sid)).is_urgent
    kinds = db.scalars(
        select(CallEvent.kind).where(CallEvent.call_sid == sid).order_by(CallEvent.id)
    ).all()
    assert kinds == ["incoming", "step:menu", "step:emergency"]
