"""Notes each survey sweep of a worker under the survey benchmark (``bench/surveys.py``).

On ``PYTHONPATH`` only for the worker processes the benchmark starts, and only when
``BENCH_SURVEY_PROBE`` names a folder: every sweep (``tickets.surveys.sweep``, which the
worker's ``place_survey_calls`` runs through ``webapp.surveys.run_survey_sweep``) appends one
JSON line to ``<folder>/<pid>.jsonl``: its process and thread, when it started and ended
(wall clock), and what it did (``SweepCounts.as_dict()``), or the error it raised. The
module attribute is replaced before the webapp imports it; the sweep itself is the
application's, untouched. When the module or the function is not there (renamed), the
probe says so in ``<folder>/<pid>.probe-error`` and the worker runs unobserved.
"""

from __future__ import annotations

import json
import os
import threading
import time

_FOLDER = os.environ.get("BENCH_SURVEY_PROBE", "")


def _install(folder: str) -> None:
    import tickets.surveys as surveys

    original = surveys.sweep
    lock = threading.Lock()

    def write(record: dict) -> None:
        line = json.dumps(record, default=str) + "\n"
        with lock, open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a") as out:
            out.write(line)

    def sweep(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.time()
        counts, error = None, None
        try:
            counts = original(*args, **kwargs)
            return counts
        except BaseException as raised:
            error = f"{type(raised).__name__}: {raised}"
            raise
        finally:
            as_dict = getattr(counts, "as_dict", None)
            policy = kwargs.get("policy")
            write(
                {
                    "pid": os.getpid(),
                    "thread": threading.current_thread().name,
                    "start": started,
                    "end": time.time(),
                    "counts": as_dict() if callable(as_dict) else None,
                    "calls_per_second": getattr(policy, "calls_per_second", None),
                    "error": error,
                }
            )

    surveys.sweep = sweep


if _FOLDER:
    try:
        _install(_FOLDER)
    except Exception as problem:  # never stop the worker: it runs unobserved
        with open(os.path.join(_FOLDER, f"{os.getpid()}.probe-error"), "w") as out:
            out.write(f"{type(problem).__name__}: {problem}\n")
