"""The hotline staff's work-order pages and the reviewers' queues."""

from __future__ import annotations

from flask import Flask


def register_order_pages(app: Flask) -> None:
    """Register the order pages' blueprints on ``app`` (none yet)."""
