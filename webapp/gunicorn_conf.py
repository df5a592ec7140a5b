"""gunicorn settings of the web process (Procfile: ``gunicorn -c python:webapp.gunicorn_conf``).

They start the journal drainer beside the workers: the workers then only append each
webhook to the journal (``JOURNAL_DRAIN=background``), and the drainer stores them in
batches. Set ``JOURNAL_DRAIN=inline`` to store in the request and start no drainer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

_drainer: subprocess.Popen[bytes] | None = None


def when_ready(server: Any) -> None:
    """In the master, before the workers fork (they inherit the environment)."""
    global _drainer
    if os.environ.setdefault("JOURNAL_DRAIN", "background") != "background":
        return
    command = [sys.executable, "-m", "webapp.cli", "drain", "--follow", "--parent-pid"]
    _drainer = subprocess.Popen([*command, str(os.getpid())])
    server.log.info("journal drainer started (pid %s)", _drainer.pid)


def on_exit(server: Any) -> None:
    """After the workers stopped: the drainer stores what is left, then exits."""
    if _drainer is not None and _drainer.poll() is None:
        _drainer.terminate()
        try:
            _drainer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.log.error("the journal drainer did not stop; its journal stays for later")
            _drainer.kill()
