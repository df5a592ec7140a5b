"""The staff's pages (behind the logins of ``webapp.auth``): the administrators' staff
pages and the call-takers' console."""

from __future__ import annotations

from flask import Flask

from webapp.staff.admin import bp as admin_bp
from webapp.staff.callbacks import bp as callbacks_bp
from webapp.staff.console import bp as console_bp


def register_staff_pages(app: Flask) -> None:
    app.register_blueprint(admin_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(callbacks_bp)
