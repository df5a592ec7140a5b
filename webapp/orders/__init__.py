"""The hotline staff's work-order pages: an order with its history and the actions their
roles allow, and the reviewers' queues of objections and extension requests."""

from __future__ import annotations

from flask import Flask

from webapp.orders.pages import bp as orders_bp
from webapp.orders.review import bp as review_bp


def register_order_pages(app: Flask) -> None:
    """Register the order pages' blueprints on ``app``."""
    app.register_blueprint(orders_bp)
    app.register_blueprint(review_bp)
