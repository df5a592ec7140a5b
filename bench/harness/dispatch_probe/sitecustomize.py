"""Counts the routing passes of a server under the routing burst (``bench/routing_burst.py``).

On ``PYTHONPATH`` only for the servers that the burst starts, and only when
``BENCH_DISPATCH_LOG`` names a folder: every process (gunicorn's master and workers, the
journal drainer, the console's workers) appends one JSON line per
``ivr.dispatch.dispatch_waiting_calls`` pass to ``<folder>/<pid>.jsonl``: when it started
and ended (wall clock), whether it reached ``assign`` (somebody free and somebody waiting)
and the call-takers it rang. The module attributes are replaced, not the code: the callers
look the function up when they call it (``ivr.persist``, ``ivr.dispatch.follow_up``, the
console's ``dispatch_after_commit``), so every pass is seen; the decision itself is the
application's, untouched.
"""

from __future__ import annotations

import json
import os
import threading
import time

_FOLDER = os.environ.get("BENCH_DISPATCH_LOG", "")


def _install(folder: str) -> None:
    import ivr.dispatch as dispatch
    import ivr.persist as persist

    original = dispatch.dispatch_waiting_calls
    original_assign = dispatch.assign
    lock = threading.Lock()
    local = threading.local()

    def write(record: dict) -> None:
        line = json.dumps(record) + "\n"
        with lock, open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a") as out:
            out.write(line)

    def assign(*args, **kwargs):  # type: ignore[no-untyped-def]
        local.decided = True
        return original_assign(*args, **kwargs)

    def dispatch_waiting_calls(*args, **kwargs):  # type: ignore[no-untyped-def]
        local.decided = False
        started = time.time()
        rung = []
        try:
            rung = original(*args, **kwargs)
            return rung
        finally:
            write(
                {
                    "pid": os.getpid(),
                    "start": started,
                    "end": time.time(),
                    "decided": bool(getattr(local, "decided", False)),
                    "rung": [[a.call_sid, a.staff_id] for a in rung or ()],
                }
            )

    dispatch.assign = assign
    dispatch.dispatch_waiting_calls = dispatch_waiting_calls
    persist.dispatch_waiting_calls = dispatch_waiting_calls


if _FOLDER:
    _install(_FOLDER)
