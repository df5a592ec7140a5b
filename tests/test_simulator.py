"""The local call simulator (ivr.simulator) against a tiny signed TwiML app built here."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from flask import Flask, Response, abort, request
from werkzeug.serving import make_server

from ivr.simulator import (
    CallSimulator,
    CallTranscript,
    HttpTransport,
    RequestRecord,
    WsgiTransport,
    run_cli,
)
from tests.support.twilio_sdk import RequestValidator, VoiceResponse

AUTH_TOKEN = "simulator-test-token"
PUBLIC = "https://hotline.example.org"
CALLER = "+8613800138000"
HOTLINE = "+862112345000"
ZH = {"language": "cmn-CN", "voice": "Polly.Zhiyu"}


def build_app(public_base_url: str = PUBLIC) -> Flask:
    """A three-step hotline: menu (keys or speech) → order number / agent conference → bye."""
    app = Flask(__name__)
    received: list[dict[str, Any]] = []
    app.config["RECEIVED"] = received
    validator = RequestValidator(AUTH_TOKEN)

    def url(path: str) -> str:
        return public_base_url + path

    def twiml(response: VoiceResponse) -> Response:
        return Response(str(response), mimetype="text/xml")

    @app.before_request
    def require_signature() -> None:
        query = request.query_string.decode()
        signed_url = public_base_url + request.path + (f"?{query}" if query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(signed_url, request.form, signature):
            abort(403)
        received.append(
            {"path": request.path, "form": request.form.to_dict(), "headers": dict(request.headers)}
        )

    @app.post("/voice/incoming")
    def incoming() -> Response:
        response = VoiceResponse()
        gather = response.gather(
            action=url("/voice/menu"), num_digits=1, input="dtmf speech", timeout=3
        )
        gather.say("欢迎致电12345市民热线。报修请按1，查询工单请按2，或直接说出您的问题。", **ZH)
        response.say("没有收到您的选择，再见。", **ZH)
        response.hangup()
        return twiml(response)

    @app.post("/voice/empty-ok")
    def empty_ok() -> Response:
        response = VoiceResponse()
        gather = response.gather(
            action=url("/voice/menu"), num_digits=1, action_on_empty_result=True
        )
        gather.say("请按键。", **ZH)
        response.say("这句不应该听到。", **ZH)
        return twiml(response)

    @app.post("/voice/menu")
    def menu() -> Response:
        digits, speech = request.form.get("Digits"), request.form.get("SpeechResult")
        response = VoiceResponse()
        if speech:
            response.say(f"您说的是：{speech}。", **ZH)
            response.redirect(url("/voice/goodbye"))
        elif digits == "1":
            response.say("正在为您转接人工坐席，请稍候。", **ZH)
            dial = response.dial(action=url("/voice/after-agent"))
            dial.conference(
                f"room-{request.form['CallSid']}",
                wait_url=url("/voice/hold?round=1"),
                status_callback=url("/voice/conference-events"),
                status_callback_event="join leave",
                start_conference_on_enter=False,
                end_conference_on_exit=True,
                participant_label="citizen",
            )
        elif digits == "2":
            gather = response.gather(action=url("/voice/order"), finish_on_key="#", timeout=5)
            gather.say("请输入工单号，以井号键结束。", **ZH)
            response.say("没有收到工单号。", **ZH)
        elif digits is None:
            response.say("没有收到按键，为您转接人工。", **ZH)
            response.hangup()
        else:
            response.say("输入有误。", **ZH)
            response.redirect(url("/voice/incoming"))
        return twiml(response)

    @app.post("/voice/order")
    def order() -> Response:
        response = VoiceResponse()
        response.say(f"工单号{request.form['Digits']}正在处理中。", **ZH)
        response.hangup()
        return twiml(response)

    @app.post("/voice/hold")
    def hold() -> Response:
        response = VoiceResponse()
        response.say(f"您前面还有{request.args['round']}位市民。", **ZH)
        response.pause(length=2)
        response.redirect(url("/voice/hold?round=2"))
        return twiml(response)

    @app.post("/voice/after-agent")
    def after_agent() -> Response:
        response = VoiceResponse()
        response.say("感谢来电。", **ZH)  # the caller hung up: Twilio ignores this
        return twiml(response)

    @app.post("/voice/goodbye")
    def goodbye() -> Response:
        response = VoiceResponse()
        response.say("再见。", **ZH)
        response.hangup()
        return twiml(response)

    @app.post("/voice/dial-number")
    def dial_number() -> Response:
        response = VoiceResponse()
        response.dial("+861012345678", action=url("/voice/goodbye"))
        return twiml(response)

    @app.post("/voice/reject")
    def reject() -> Response:
        response = VoiceResponse()
        response.reject(reason="busy")
        return twiml(response)

    @app.post("/voice/loop")
    def loop() -> Response:
        response = VoiceResponse()
        response.redirect(url("/voice/loop"))
        return twiml(response)

    @app.post("/voice/relative")
    def relative() -> Response:
        response = VoiceResponse()
        response.redirect("/voice/goodbye")
        return twiml(response)

    @app.post("/voice/broken")
    def broken() -> Response:
        return Response("boom", status=500, mimetype="text/plain")

    @app.post("/voice/html")
    def html() -> Response:
        return Response("<html><body>hi</body></html>", mimetype="text/html")

    @app.post("/voice/conference-events")
    @app.post("/voice/status")
    def callbacks() -> Response:
        return Response("", status=204)

    return app


@pytest.fixture
def app() -> Flask:
    return build_app()


def simulator(app: Flask, **options: Any) -> CallSimulator:
    return CallSimulator(
        WsgiTransport(app), auth_token=AUTH_TOKEN, public_base_url=PUBLIC, **options
    )


def call(app: Flask, *inputs: str, **options: Any) -> CallTranscript:
    return simulator(app, **options).call(CALLER, HOTLINE, inputs)


def sent(transcript: CallTranscript, path: str) -> list[RequestRecord]:
    return [record for record in transcript.requests if record.path.split("?")[0] == path]


def test_press_1_hears_menu_then_waits_in_conference(app: Flask) -> None:
    transcript = call(app, "1")

    assert transcript.errors == []
    assert transcript.said("🔊 (cmn-CN, Polly.Zhiyu) 欢迎致电12345市民热线")
    assert transcript.said("正在为您转接人工坐席")
    assert f"☎ joins conference room-{transcript.call_sid}" in transcript.heard
    assert transcript.said("您前面还有1位市民") and transcript.said("您前面还有2位市民")
    assert "… (pause 2s)" in transcript.heard
    assert not transcript.said("感谢来电")  # the Dial action's TwiML is not run
    assert transcript.ended_by == "conference"
    assert [record.param("Digits") for record in sent(transcript, "/voice/menu")] == ["1"]


def test_conference_wait_url_callbacks_and_dial_action(app: Flask) -> None:
    transcript = call(app, "1", wait_loops=2)

    waits = sent(transcript, "/voice/hold")
    assert [record.path for record in waits] == ["/voice/hold?round=1", "/voice/hold?round=2"]
    assert waits[0].param("FriendlyName") == f"room-{transcript.call_sid}"
    events = sent(transcript, "/voice/conference-events")
    assert [e.param("StatusCallbackEvent") for e in events] == [
        "participant-join",
        "participant-leave",
    ]
    assert [e.param("SequenceNumber") for e in events] == ["1", "2"]
    join = events[0]
    assert join.param("ConferenceSid").startswith("CF") and len(join.param("ConferenceSid")) == 34
    assert join.param("CallSid") == transcript.call_sid
    assert join.param("FriendlyName") == f"room-{transcript.call_sid}"
    assert join.param("StartConferenceOnEnter") == "false"
    assert join.param("EndConferenceOnExit") == "true"
    assert join.param("ParticipantLabel") == "citizen"
    assert (join.param("Muted"), join.param("Hold"), join.param("Coaching")) == ("false",) * 3
    parsedate_to_datetime(join.param("Timestamp"))
    (after,) = sent(transcript, "/voice/after-agent")
    assert after.param("DialCallStatus") == "completed"
    assert after.kind == "dial-action"


def test_speech_input_posts_speech_result(app: Flask) -> None:
    transcript = call(app, "speech:着火了")

    (menu,) = sent(transcript, "/voice/menu")
    assert menu.param("SpeechResult") == "着火了"
    assert menu.param("Confidence") == "0.9"
    assert menu.param("Digits") is None
    assert transcript.said("您说的是：着火了。")
    assert transcript.said("再见。")
    assert transcript.ended_by == "hangup"


def test_silence_falls_through_to_the_next_verb(app: Flask) -> None:
    transcript = call(app, "")

    assert sent(transcript, "/voice/menu") == []
    assert "👤 stays silent" in transcript.heard
    assert transcript.said("没有收到您的选择，再见。")
    assert transcript.ended_by == "hangup"


def test_silence_with_action_on_empty_result_posts_without_digits(app: Flask) -> None:
    transcript = call(app, "", voice_path="/voice/empty-ok")

    (menu,) = sent(transcript, "/voice/menu")
    assert "Digits" not in dict(menu.form)
    assert transcript.said("没有收到按键，为您转接人工。")
    assert not transcript.said("这句不应该听到")


def test_finish_on_key_is_not_sent_as_a_digit(app: Flask) -> None:
    transcript = call(app, "2", "12345#")

    (order,) = sent(transcript, "/voice/order")
    assert order.param("Digits") == "12345"
    assert order.param("FinishedOnKey") == "#"
    assert transcript.said("请输入工单号，以井号键结束。")
    assert transcript.said("工单号12345正在处理中。")


def test_num_digits_keeps_only_that_many_keys(app: Flask) -> None:
    transcript = call(app, "21", "#")

    (menu,) = sent(transcript, "/voice/menu")
    assert (menu.param("Digits"), menu.param("FinishedOnKey")) == ("2", "")
    assert sent(transcript, "/voice/order") == []  # "#" alone is an empty result
    assert transcript.said("没有收到工单号。")


def test_caller_hangs_up_when_inputs_run_out(app: Flask) -> None:
    transcript = call(app)

    assert transcript.ended_by == "caller"
    assert transcript.heard[-1] == "👤 hangs up"
    assert [record.kind for record in transcript.requests] == ["voice", "status"]


def test_call_parameters_are_twilios(app: Flask) -> None:
    transcript = call(app, "2", "1#")

    first, menu = transcript.requests[:2]
    assert first.path == "/voice/incoming"
    assert first.param("CallStatus") == "ringing"
    assert menu.param("CallStatus") == "in-progress"
    sid = transcript.call_sid
    assert sid.startswith("CA") and len(sid) == 34 and int(sid[2:], 16) >= 0
    params = dict(first.form)
    assert params["AccountSid"] == "AC" + "0" * 32
    assert params["ApiVersion"] == "2010-04-01"
    assert params["CallSid"] == sid
    assert params["Direction"] == "inbound"
    assert (params["From"], params["Caller"], params["To"], params["Called"]) == (
        CALLER,
        CALLER,
        HOTLINE,
        HOTLINE,
    )
    assert (params["FromCountry"], params["ToCountry"]) == ("CN", "CN")


def test_every_request_is_signed_with_a_fresh_idempotency_token(app: Flask) -> None:
    transcript = call(app, "1")

    received = app.config["RECEIVED"]
    assert len(received) == len(transcript.requests)  # none was refused with 403
    assert all(record.status in (200, 204) for record in transcript.requests)
    validator = RequestValidator(AUTH_TOKEN)
    for record in transcript.requests:
        signature = record.headers["X-Twilio-Signature"]
        assert validator.validate(PUBLIC + record.path, dict(record.form), signature)
        assert record.headers["User-Agent"] == "TwilioProxy/1.1"
    tokens = [seen["headers"]["I-Twilio-Idempotency-Token"] for seen in received]
    assert len(set(tokens)) == len(tokens)
    assert all(uuid.UUID(token) for token in tokens)


def test_wrong_auth_token_is_refused_by_the_app(app: Flask) -> None:
    sim = CallSimulator(WsgiTransport(app), auth_token="not-the-token", public_base_url=PUBLIC)
    transcript = sim.call(CALLER, HOTLINE, ["1"])

    assert transcript.ended_by == "error"
    assert transcript.requests[0].status == 403
    assert any("HTTP 403" in error for error in transcript.errors)
    assert app.config["RECEIVED"] == []


def test_status_callback_is_posted_at_the_end(app: Flask) -> None:
    transcript = call(app, "2", "12345#")

    status = transcript.requests[-1]
    assert (status.path, status.kind) == ("/voice/status", "status")
    assert status.param("CallStatus") == "completed"
    assert status.param("SequenceNumber") == "0"
    assert status.param("CallbackSource") == "call-progress-events"
    assert status.param("CallSid") == transcript.call_sid
    assert int(status.param("CallDuration")) == transcript.duration > 0
    assert parsedate_to_datetime(status.param("Timestamp")).tzinfo is not None
    assert transcript.call_status == "completed"


def test_redirect_loop_stops_at_max_steps(app: Flask) -> None:
    transcript = call(app, voice_path="/voice/loop", max_steps=5)

    assert len(sent(transcript, "/voice/loop")) == 5
    assert transcript.ended_by == "error"
    assert any("too many steps" in error for error in transcript.errors)
    assert transcript.requests[-1].kind == "status"  # the status callback still goes


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/voice/broken", "HTTP 500"), ("/voice/html", "text/html")],
)
def test_application_error_is_reported(app: Flask, path: str, problem: str) -> None:
    transcript = call(app, "1", voice_path=path)

    assert transcript.ended_by == "error"
    assert len(transcript.errors) == 1 and problem in transcript.errors[0]
    assert transcript.heard[-1].startswith("✖ application error:")
    assert transcript.requests[-1].kind == "status"


def test_relative_urls_are_an_error(app: Flask) -> None:
    transcript = call(app, voice_path="/voice/relative")

    assert transcript.ended_by == "error"
    assert "not on the public base URL" in transcript.errors[0]


def test_dial_to_a_number_follows_the_dial_action(app: Flask) -> None:
    transcript = call(app, voice_path="/voice/dial-number")

    assert "☎ dials +861012345678" in transcript.heard
    (goodbye,) = sent(transcript, "/voice/goodbye")
    assert goodbye.param("DialCallStatus") == "completed"
    assert transcript.said("再见。")


def test_first_reject_leaves_the_call_unanswered(app: Flask) -> None:
    transcript = call(app, voice_path="/voice/reject")

    assert transcript.ended_by == "reject"
    assert transcript.requests[-1].param("CallStatus") == "busy"
    assert transcript.requests[-1].param("CallDuration") == "0"


def test_bad_input_is_refused_before_calling(app: Flask) -> None:
    with pytest.raises(ValueError, match="not a phone key"):
        call(app, "1a")
    with pytest.raises(TypeError, match="list of inputs"):
        simulator(app).call(CALLER, HOTLINE, "12345#")
    assert app.config["RECEIVED"] == []


def test_interactive_mode_reads_lines_until_end_of_input(app: Flask) -> None:
    answers = iter(["x", "2", "12345#"])
    prompts: list[str] = []

    def read_input(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    sim = simulator(app, read_input=read_input)
    transcript = sim.call(CALLER, HOTLINE, interactive=True)

    assert "not a phone key" in prompts[1]  # "x" is refused and asked again
    assert transcript.said("工单号12345正在处理中。")
    assert transcript.ended_by == "hangup"


def test_run_cli_prints_as_it_goes_and_a_summary(app: Flask) -> None:
    out = io.StringIO()

    status = run_cli(simulator(app), CALLER, HOTLINE, ["2", "12345#"], out=out)

    lines = out.getvalue().splitlines()
    assert status == 0
    assert lines[0].startswith(f"📞 {CALLER} → {HOTLINE}")
    assert "👤 presses 12345#" in lines
    assert any("工单号12345正在处理中" in line for line in lines)
    assert lines[-1].startswith("— CA") and "0 errors" in lines[-1]


def test_run_cli_exit_status_for_errors_and_bad_input(app: Flask) -> None:
    out = io.StringIO()
    assert run_cli(simulator(app, voice_path="/voice/broken"), CALLER, HOTLINE, out=out) == 1
    assert "✖ voice /voice/broken: HTTP 500" in out.getvalue()
    assert run_cli(simulator(app), CALLER, HOTLINE, ["1?"], out=io.StringIO()) == 2


@pytest.fixture
def live_server() -> Iterator[str]:
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late)
    base_url = f"http://127.0.0.1:{server.port}"
    late.app = build_app(base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


class _LateApp:
    """A WSGI app set once the server's port (hence the public base URL) is known."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


def test_http_transport_against_a_real_server(live_server: str) -> None:
    sim = CallSimulator(
        HttpTransport(live_server), auth_token=AUTH_TOKEN, public_base_url=live_server
    )

    transcript = sim.call(CALLER, HOTLINE, ["2", "12345#"])

    assert transcript.errors == []
    assert transcript.said("工单号12345正在处理中。")
    assert [record.status for record in transcript.requests] == [200, 200, 200, 204]

    broken = CallSimulator(
        HttpTransport(live_server),
        auth_token=AUTH_TOKEN,
        public_base_url=live_server,
        voice_path="/voice/broken",
    ).call(CALLER, HOTLINE)
    assert broken.errors[0] == "voice /voice/broken: HTTP 500"


def test_http_transport_reports_a_server_that_is_not_there() -> None:
    server = make_server("127.0.0.1", 0, build_app())
    base_url = f"http://127.0.0.1:{server.port}"
    server.server_close()  # nothing listens there any more

    sim = CallSimulator(HttpTransport(base_url), auth_token=AUTH_TOKEN, public_base_url=base_url)
    transcript = sim.call(CALLER, HOTLINE, ["1"])

    assert transcript.ended_by == "error"
    assert transcript.requests[0].status == 0
    assert transcript.errors[0].startswith("voice /voice/incoming: POST")
