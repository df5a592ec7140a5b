"""CPU time and RSS from /proc, and waiting for the rest of the machine to go quiet."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pid: int, *, with_children: bool = False) -> int:
    fields = _stat_fields(pid)
    if fields is None:
        return 0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped workers)
    return ticks


def children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in Path(task.path, "children").read_text().split()]
        return pids
    except OSError:
        return []


def is_drainer(pid: int) -> bool:
    """The journal drainer the hotline's gunicorn config starts beside the workers."""
    try:
        return b"drain" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def server_cpu_s(master: int) -> float:
    """CPU seconds of the gunicorn master, its live workers and the workers it reaped.

    The hotline's journal drainer is a child of the master too, so it is counted.
    """
    ticks = cpu_ticks(master, with_children=True)
    ticks += sum(cpu_ticks(worker) for worker in children(master))
    return ticks / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def machine_cpu_s() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS


def wait_until_quiet(max_wait_s: float, busy_limit: float = 0.3) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under ``busy_limit`` cores.

    Returns the cores they used in the last 0.5 s sample: a shared machine (tests, builds)
    skews the figures, so the harness waits for a quiet moment before each run.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy_before, _ = machine_cpu_s()
        time.sleep(0.5)
        busy = (machine_cpu_s()[0] - busy_before) / 0.5
        if busy < busy_limit or time.monotonic() >= deadline:
            return busy
