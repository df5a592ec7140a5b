"""Validate TwiML documents against Twilio's voice XSD, offline.

The schema (``tests/contract/twiml/twiml-local.xsd``: Twilio's 2018 XSD plus
``participantLabel``, see the README there) is loaded once per process.
``allow="local"`` forbids remote fetches; the one import of
``http://www.w3.org/2001/xml.xsd`` is served from the copy that ships with ``xmlschema``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from xml.etree import ElementTree

import xmlschema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "contract" / "twiml" / "twiml-local.xsd"


@cache
def twiml_schema() -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(SCHEMA_PATH), allow="local")


def _as_text(xml: str | bytes) -> str:
    return xml.decode("utf-8", errors="replace") if isinstance(xml, bytes) else xml


def twiml_errors(xml: str | bytes) -> list[str]:
    """Every validation (or well-formedness) error in ``xml``; empty when valid."""
    # Parse here: given a string that does not look like XML, xmlschema would open it as a path.
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    return [f"{error.path or '/'}: {error.reason}" for error in twiml_schema().iter_errors(root)]


def assert_valid_twiml(xml: str | bytes) -> None:
    """Raise AssertionError with the validator's messages unless ``xml`` is valid TwiML."""
    errors = twiml_errors(xml)
    if errors:
        raise AssertionError("invalid TwiML:\n  " + "\n  ".join(errors) + f"\n{_as_text(xml)}")
