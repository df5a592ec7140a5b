"""The versioned JSON API for other systems (provincial platforms, department systems)."""

from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    """Register the API's blueprints on ``app`` (none yet)."""
