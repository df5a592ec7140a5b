"""Counts the routing passes of a server under the routing burst (``bench/routing_burst.py``).

On ``PYTHONPATH`` only for the servers that the burst starts, and only when
``BENCH_DISPATCH_LOG`` names a folder: every process (gunicorn's master and workers, the
journal drainer, the console's workers) appends one JSON line per routing pass
(``ivr.dispatch.dispatch_waiting_calls``, or the console's ``free_and_ring``) to
``<folder>/<pid>.jsonl``: when it started and ended (wall clock), whether it reached
``assign`` (somebody free and somebody waiting) and the call-takers it rang. The module
attributes are replaced before the app is imported, not the code, so every caller gets
the wrapped function (``ivr.persist`` imported its own name first, and is given it); the
decision itself is the application's, untouched.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable

_FOLDER = os.environ.get("BENCH_DISPATCH_LOG", "")


def _install(folder: str) -> None:
    import ivr.dispatch as dispatch
    import ivr.persist as persist

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

    def noted(pass_: Callable[..., list]) -> Callable[..., list]:
        def noting(*args, **kwargs):  # type: ignore[no-untyped-def]
            local.decided = False
            started = time.time()
            rung = []
            try:
                rung = pass_(*args, **kwargs)
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

        return noting

    dispatch.assign = assign
    dispatch.dispatch_waiting_calls = noted(dispatch.dispatch_waiting_calls)
    persist.dispatch_waiting_calls = dispatch.dispatch_waiting_calls
    # The console's "available" (its own pass; a fallback pass inside it is noted too).
    dispatch.free_and_ring = noted(dispatch.free_and_ring)


if _FOLDER:
    _install(_FOLDER)
