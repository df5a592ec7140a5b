"""The pieces of twilio-python that tests use to play Twilio's part.

Tests reach twilio only through tests/support, as the app reaches it only through ivr/.
"""

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

__all__ = ["RequestValidator", "VoiceResponse"]
