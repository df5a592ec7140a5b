"""The department portal (部门工作台): department liaisons' view of their own orders."""

from __future__ import annotations

from flask import Flask

from webapp.portal.views import bp


def register_portal_pages(app: Flask) -> None:
    """Register the portal's blueprints on ``app``."""
    app.register_blueprint(bp)
