"""The offline TwiML validator accepts what the voice routes emit and rejects typical mistakes."""

from __future__ import annotations

import pytest

from tests.support.twiml_schema import assert_valid_twiml, twiml_errors

# What the project emits, as twilio-python's VoiceResponse serialises it (checked in
# tests/test_gateway.py against the real builder for the conference leg).
VALID_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather input="dtmf speech" action="https://hotline.example/ivr/menu" method="POST"
          actionOnEmptyResult="true" hints="停水,噪音,water" language="cmn-CN"
          speechTimeout="auto" timeout="5" numDigits="1">
    <Say voice="Polly.Zhiyu" language="cmn-CN">您好，这里是12345政务服务便民热线。</Say>
    <Play>https://hotline.example/audio/menu.mp3</Play>
    <Pause length="1"/>
  </Gather>
  <Say voice="Polly.Joanna" language="en-US">Please hold.</Say>
  <Play loop="2">https://hotline.example/audio/hold.mp3</Play>
  <Pause length="2"/>
  <Dial action="https://hotline.example/ivr/after-dial" timeout="20"
        callerId="+861012345678" hangupOnStar="true">
    <Conference waitUrl="https://hotline.example/ivr/wait" waitMethod="POST"
                startConferenceOnEnter="true" endConferenceOnExit="false" beep="false"
                statusCallback="https://hotline.example/ivr/conference-events"
                statusCallbackEvent="start end join leave"
                participantLabel="citizen">ticket-2024-000123</Conference>
  </Dial>
  <Dial timeout="30"><Number>+8613800000001</Number></Dial>
  <Redirect method="POST">https://hotline.example/ivr/menu</Redirect>
  <Hangup/>
</Response>
"""


def test_accepts_the_constructs_the_project_uses() -> None:
    assert twiml_errors(VALID_DOCUMENT) == []
    assert_valid_twiml(VALID_DOCUMENT)
    assert_valid_twiml(VALID_DOCUMENT.encode("utf-8"))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param('<Response><Dial timout="5">+1</Dial></Response>', "timout", id="typo"),
        pytest.param('<Response><Gather timeout="abc"/></Response>', "abc", id="not-an-int"),
        pytest.param(
            "<Response><Dial><Say>hi</Say></Dial></Response>", "Say", id="say-inside-dial"
        ),
        pytest.param("<Response><Shout>hi</Shout></Response>", "Shout", id="unknown-verb"),
        pytest.param(
            '<Response><Dial><Conference participantLabl="x">r</Conference></Dial></Response>',
            "participantLabl",
            id="extension-is-narrow",
        ),
        pytest.param('<Response><Say voice="alice">hi</Say></Response>', "alice", id="voice"),
        pytest.param("<Reply/>", "Reply", id="wrong-root"),
        pytest.param("<Response><Say>", "well-formed", id="not-xml"),
    ],
)
def test_rejects_invalid_twiml(document: str, expected: str) -> None:
    errors = twiml_errors(document)
    assert errors
    assert expected in " ".join(errors)
    with pytest.raises(AssertionError, match="invalid TwiML"):
        assert_valid_twiml(document)


def test_never_reads_a_string_as_a_path() -> None:
    # xmlschema would open a non-XML string as a file; the helper parses it as XML instead.
    [error] = twiml_errors("/etc/hostname")
    assert error.startswith("not well-formed XML")
