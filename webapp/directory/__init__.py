"""The duty directory's staff side: the admin pages (browse, upload, edit) and the
``hotline directory`` commands. The directory itself lives in ``tickets.directory``."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from webapp.directory.admin import bp

# The project's demo directory (the sample of ../shared/duty-directory/), kept with the
# recommender that reads it.
DEMO_DIRECTORY = Path(__file__).resolve().parents[2] / "routing" / "data" / "directory"


def register_directory_pages(app: Flask) -> None:
    app.register_blueprint(bp)
