"""The routing burst: 200 callers at once through the webhooks, 50 call-takers answering.

Run by ``bench/routing.py`` (see there and bench/README.md). The real path, in processes
of their own: the hotline's ``web`` server as the Procfile runs it (gunicorn sync workers
with the journal drainer, ``JOURNAL_DRAIN=background``), its ``console`` server (gthread),
and its real ``TwilioGateway`` pointed at a stand-in for Twilio's REST API
(``harness/fake_twilio.py``) that notes when each participant create reaches it. This
process plays Twilio (the callers' signed webhooks, then the callbacks of each leg and
room) and the call-takers (their console's "available" button, over HTTP, logged in).

The time measured: from a call-taker's ``available`` state change (the ``at`` the console
view writes in ``call_taker_state_changes``, before its commit) to the moment their next
participant create reached the stand-in: both wall-clock times of this machine.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from harness.burst_servers import (
    Console,
    FakeTwilio,
    Server,
    console_server,
    find_tools,
    free_port,
    server_env,
    web_server,
)
from harness.databases import Databases, databases_for
from harness.deliveries import Delivery, post, twilio_form
from harness.procstats import CLOCK_TICKS, cpu_ticks, machine_cpu_s
from harness.tools import HarnessError, Tools
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import staff as staff_store
from tickets.db import make_engine
from tickets.models import Call, CallTakerState, CallTakerStateChange, Role
from tickets.staff import StaffDetails

GOAL_P99_MS = 100.0
PASSWORD = "bench-burst-password"
LANGUAGE_KEYS = {"zh": "1", "bo": "2", "en": "3"}
BENCH_ACTOR = "system:bench"


@dataclass
class BurstOptions:
    calls: int = 200
    takers: int = 50
    ring_s: float = 0.3  # the call-taker's phone rings this long before they pick up
    talk_s: float = 2.0  # mean talk time (uniform, 0.5x to 1.5x)
    wrap_s: float = 0.3  # mean time in wrap-up before the call-taker presses "available"
    web_workers: int = 4
    console_workers: int = 2
    timeout_s: float = 180.0
    seed: int = 12345
    # The threads that play Twilio and the callers run this much nicer than the servers:
    # in production Twilio's side is not on the hotline's cores (0 = same priority).
    client_nice: int = 10


@dataclass
class Caller:
    sid: str
    index: int
    language: str
    menu_key: str
    rings: Queue[dict[str, Any]] = field(default_factory=Queue)
    menu_done: float = 0.0
    answered: bool = False
    problem: str = ""


@dataclass
class Taker:
    staff_id: int
    username: str
    languages: tuple[str, ...]
    console: Console | None = None


class Burst:
    """One burst on one fresh database; ``run`` returns its figures and its problems."""

    def __init__(
        self, databases: Databases, tools: Tools, options: BurstOptions, workdir: Path
    ) -> None:
        self.databases = databases
        self.tools = tools
        self.options = options
        self.workdir = workdir
        self.rng = random.Random(options.seed)
        self.callers: dict[str, Caller] = {}
        self.takers: dict[int, Taker] = {}
        self.problems: list[str] = []
        self.webhooks = Counter[str]()
        self._lock = threading.Lock()
        self.console_posts: list[tuple[float, float]] = []  # (sent, answered), wall clock

    # -- set-up ---------------------------------------------------------------------------

    def make_takers(self, database_url: str) -> None:
        """Call-takers through ``tickets.staff``: all speak Mandarin, a quarter Tibetan
        too, a tenth English too (at least one of each); skills mixed."""
        engine = make_engine(database_url)
        try:
            with Session(engine) as session:
                for n in range(1, self.options.takers + 1):
                    languages = ["zh"]
                    if n % 4 == 1:
                        languages.append("bo")
                    if n % 10 == 2:
                        languages.append("en")
                    skills = self.rng.sample(["consultation", "complaint", "help"], 2)
                    details = StaffDetails(
                        display_name=f"Taker {n}",
                        roles=frozenset({Role.CALL_TAKER}),
                        languages=tuple(languages),
                        skills=tuple(skills),
                        phone_number=f"+86139{n:08d}",
                    )
                    person = staff_store.create_staff(
                        f"taker{n:03d}", PASSWORD, details, session=session, actor=BENCH_ACTOR
                    )
                    session.flush()
                    self.takers[person.id] = Taker(person.id, person.username, tuple(languages))
                session.commit()
        finally:
            engine.dispose()

    def make_callers(self) -> None:
        run = uuid.uuid4().hex[:6]
        for index in range(self.options.calls):
            sid = f"CA{run}{index:026d}"
            language = self.rng.choices(["zh", "bo", "en"], [85, 12, 3])[0]
            key = self.rng.choice(["1", "2", "3"])
            self.callers[sid] = Caller(sid, index, language, key)

    # -- Twilio's side --------------------------------------------------------------------

    def on_twilio(self, record: dict[str, Any]) -> None:
        """A REST request reached the stand-in: a participant create rings a phone."""
        if record["op"] == "add":
            caller = self.callers.get(record["room"])
            if caller is None:
                self.problems.append(f"a participant create for an unknown room {record['room']}")
            else:
                caller.rings.put(record)

    def deliver(self, url_or_path: str, form: list[tuple[str, str]], what: str) -> str:
        path = url_or_path.removeprefix(self.web.base_url)
        status, body = post(self.web.base_url, Delivery(path, form), str(uuid.uuid4()), 30.0)
        with self._lock:
            self.webhooks[f"{what} {status}"] += 1
        if status != 200:
            raise RuntimeError(f"{what} answered HTTP {status}: {body[:200]}")
        return body

    def play_call(self, caller: Caller, start: threading.Barrier, deadline: float) -> None:
        try:
            if self.options.client_nice:  # this thread only (Linux: a thread has its own)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.options.client_nice)
            start.wait()
            self._play_call(caller, deadline)
        except Exception as error:  # reported with the figures; the burst goes on
            caller.problem = f"{type(error).__name__}: {error}"

    def _play_call(self, caller: Caller, deadline: float) -> None:
        sid, index, lang = caller.sid, caller.index, caller.language
        self.deliver("/voice/incoming", twilio_form(sid, index, CallStatus="ringing"), "incoming")
        language_form = twilio_form(sid, index, Digits=LANGUAGE_KEYS[lang])
        self.deliver("/voice/step/language?lang=zh&try=1", language_form, "language")
        menu_form = twilio_form(sid, index, Digits=caller.menu_key)
        twiml = self.deliver(f"/voice/step/menu?lang={lang}&try=1", menu_form, "menu")
        caller.menu_done = time.time()
        dial = ET.fromstring(twiml).find("Dial")
        room = dial.find("Conference") if dial is not None else None
        if dial is None or room is None:
            raise RuntimeError(f"the menu did not put the caller in the queue: {twiml[:200]}")
        room_url = room.get("statusCallback", "")
        conference = Room(sid, "CF" + uuid.uuid4().hex)
        # Twilio: the caller enters the waiting room and fetches its wait URL (hold music).
        self.deliver(room_url, conference.event("participant-join", sid, "citizen"), "join")
        self.deliver(room.get("waitUrl", ""), twilio_form(sid, index), "wait")
        try:
            ring = caller.rings.get(timeout=max(0.0, deadline - time.time()))
        except Empty:
            raise RuntimeError("never rung") from None
        leg, label, status_url = ring["call_sid"], ring["label"], ring["status_callback"]
        leg_form = Leg(leg, ring["to"])
        self.deliver(status_url, leg_form.progress("initiated"), "participant")
        self.deliver(status_url, leg_form.progress("ringing"), "participant")
        time.sleep(self.options.ring_s)
        self.deliver(status_url, leg_form.progress("in-progress"), "participant")
        self.deliver(room_url, conference.event("conference-start"), "conference")
        self.deliver(room_url, conference.event("participant-join", leg, label), "join")
        caller.answered = True
        time.sleep(self.options.talk_s * self.rng.uniform(0.5, 1.5))
        # The caller hangs up; their exit ends the room (endConferenceOnExit).
        left = [("ReasonParticipantLeft", "participant_hung_up")]
        self.deliver(room_url, conference.event("participant-leave", sid, "citizen", left), "leave")
        self.deliver(room_url, conference.event("participant-leave", leg, label), "leave")
        self.deliver(status_url, leg_form.progress("completed"), "participant")
        self.deliver(room_url, conference.event("conference-end"), "conference")
        action = dial.get("action")
        if action:
            self.deliver(action, twilio_form(sid, index, DialCallStatus="completed"), "dial")
        done = twilio_form(sid, index, CallStatus="completed", CallDuration="3")
        self.deliver("/voice/status", done, "status")
        # The call-taker wraps up, then presses "available" on the console.
        time.sleep(self.options.wrap_s * self.rng.uniform(0.5, 1.5))
        taker = self.takers[int(label.removeprefix("taker-"))]
        assert taker.console is not None
        sent = time.time()
        status = taker.console.go_available()
        with self._lock:
            self.console_posts.append((sent, time.time()))
        if status != 302:
            raise RuntimeError(f"{taker.username}'s 'available' answered HTTP {status}")

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        options = self.options
        database_url = self.databases.fresh(f"burst_{uuid.uuid4().hex[:6]}")
        self.make_takers(database_url)
        self.make_callers()
        fake = FakeTwilio(self.workdir, self.on_twilio)
        servers: list[Server] = []
        pids: dict[int, str] = {}
        try:
            port = free_port()  # both servers answer as one public base: the web's
            public = f"http://127.0.0.1:{port}"
            web_env = server_env(database_url, public, fake.base_url, self.workdir, "web")
            self.web = web_server(web_env, self.workdir, options.web_workers, self.tools, port)
            servers.append(self.web)
            console_env = server_env(
                database_url, self.web.base_url, fake.base_url, self.workdir, "console"
            )
            console = console_server(console_env, self.workdir, options.console_workers, self.tools)
            servers.append(console)
            self.web.wait_healthy()
            console.wait_healthy()
            for taker in self.takers.values():  # log in and go available: nobody waits yet
                taker.console = Console(console.base_url, taker.username, PASSWORD)
                if taker.console.go_available() != 302:
                    raise HarnessError(f"{taker.username} could not go available")
            self.console_posts.clear()
            start = threading.Barrier(len(self.callers) + 1)
            deadline = time.time() + options.timeout_s
            threads = [
                threading.Thread(target=self.play_call, args=(c, start, deadline), daemon=True)
                for c in self.callers.values()
            ]
            for thread in threads:
                thread.start()
            pids = {pid: kind for server in servers for pid, kind in server.pids().items()}
            pids[fake.pid] = "Twilio stand-in"
            pids[os.getpid()] = "load generator"
            cpu_before = {pid: cpu_ticks(pid) for pid in pids}
            busy_before = machine_cpu_s()[0]
            began = time.time()
            start.wait()  # all at once
            for thread in threads:
                thread.join(max(0.0, deadline - time.time()))
            finished = time.time()
            cpu = Counter[str]()
            for pid, kind in pids.items():
                cpu[kind] += (cpu_ticks(pid) - cpu_before[pid]) / CLOCK_TICKS
            cpu["the whole machine"] = machine_cpu_s()[0] - busy_before
        finally:
            for server in servers:
                server.stop()
            fake.stop()
        figures = self.figures(database_url, began, finished, fake.records, pids, servers)
        figures["cpu_s"] = dict(cpu)
        return figures

    # -- figures --------------------------------------------------------------------------

    def figures(
        self,
        database_url: str,
        began: float,
        finished: float,
        records: list[dict[str, Any]],
        pids: dict[int, str],
        servers: list[Server],
    ) -> dict[str, Any]:
        adds = sorted((r for r in records if r["op"] == "add"), key=lambda r: r["t"])
        engine = make_engine(database_url)
        try:
            with Session(engine) as session:
                changes = session.scalars(
                    select(CallTakerStateChange).order_by(CallTakerStateChange.id)
                ).all()
                calls = {
                    call.call_sid: call
                    for call in session.scalars(
                        select(Call).where(Call.call_sid.in_(list(self.callers)))
                    )
                }
                changes = [
                    (c.staff_id, c.at.timestamp(), c.from_state, c.to_state, c.actor)
                    for c in changes
                ]
        finally:
            engine.dispose()

        # Availabilities during the burst: the console's "available" after a wrap-up.
        freed = [
            (staff_id, at)
            for staff_id, at, was, now, actor in changes
            if now is CallTakerState.AVAILABLE
            and was is CallTakerState.WRAP_UP
            and actor == f"staff:{staff_id}"
            and at >= began
        ]
        adds_by_taker: dict[int, list[float]] = defaultdict(list)
        for add in adds:
            label = add.get("label", "")
            if label.startswith("taker-"):
                adds_by_taker[int(label.removeprefix("taker-"))].append(add["t"])
        claims: dict[int, list[float]] = defaultdict(list)  # rung: claimed in the database
        for staff_id, at, _was, now, _actor in changes:
            if now is CallTakerState.RINGING:
                claims[staff_id].append(at)
        latencies: list[float] = []
        claimed: list[float] = []
        not_rung = 0
        for staff_id, at in freed:
            later = [t for t in adds_by_taker[staff_id] if t >= at]
            if later:
                latencies.append((later[0] - at) * 1000)
                claim = [t for t in claims[staff_id] if at <= t <= later[0]]
                if claim:
                    claimed.append((claim[0] - at) * 1000)
            else:
                not_rung += 1

        # Correctness: each caller rung once, each call-taker never twice without being
        # freed in between, every call answered and out of the queue.
        rooms = Counter(add["room"] for add in adds)
        never = [sid for sid in self.callers if rooms[sid] == 0]
        twice = [sid for sid in self.callers if rooms[sid] > 1]
        freed_at: dict[int, list[float]] = defaultdict(list)
        for staff_id, at in freed:
            freed_at[staff_id].append(at)
        double_rung = []
        for staff_id, times in adds_by_taker.items():
            for first, second in pairwise(times):
                if not any(first <= at <= second for at in freed_at[staff_id]):
                    double_rung.append(staff_id)
        problems = list(self.problems)
        problems += [f"{sid}: {c.problem}" for sid, c in self.callers.items() if c.problem][:10]
        if never:
            problems.append(f"{len(never)} calls never rung through")
        if twice:
            problems.append(f"{len(twice)} callers rung more than once")
        if double_rung:
            problems.append(
                f"call-takers rung again before they were free: {sorted(set(double_rung))}"
            )
        unanswered = [sid for sid, call in calls.items() if call.queue_left_at is None]
        if len(calls) != len(self.callers):
            problems.append(f"{len(self.callers) - len(calls)} calls were never stored")
        if unanswered:
            problems.append(f"{len(unanswered)} calls never left the queue")
        tracebacks = sum(s.log_path.read_text(errors="replace").count("Traceback") for s in servers)
        if tracebacks:
            problems.append(f"{tracebacks} tracebacks in the server logs (see {self.workdir})")

        passes = read_passes(self.workdir / "dispatch", began, finished)
        last_add = adds[-1]["t"] if adds else finished
        window = max(last_add - began, 1e-9)
        by_kind = Counter(pids.get(p["pid"], "other") for p in passes)
        return {
            "calls": len(self.callers),
            "takers": len(self.takers),
            "burst_s": window,
            "run_s": finished - began,
            "all_queued_s": max((c.menu_done for c in self.callers.values()), default=began)
            - began,
            "webhooks": sum(self.webhooks.values()),
            "rings": len(adds),
            "availabilities": len(freed),
            "measured": len(latencies),
            "not_rung_again": not_rung,
            "latency_ms": percentiles(latencies),
            "claimed_ms": percentiles(claimed),
            "passes": len(passes),
            "passes_deciding": sum(1 for p in passes if p["decided"]),
            "passes_lost": sum(1 for p in passes if p["decided"] and not p["rung"]),
            "passes_by": dict(by_kind),
            "pass_ms": percentiles([(p["end"] - p["start"]) * 1000 for p in passes]),
            "assignments": sum(len(p["rung"]) for p in passes),
            "passes_per_s": len(passes) / window,
            "decisions_per_s": sum(1 for p in passes if p["decided"]) / window,
            "assignments_per_s": len(adds) / window,
            "console_post_ms": percentiles([(b - a) * 1000 for a, b in self.console_posts]),
            "problems": problems,
        }


@dataclass
class Room:
    """The caller's conference as Twilio reports it (``statusCallback`` of their Conference)."""

    name: str
    sid: str
    sequence: int = 0

    def event(
        self, event: str, call_sid: str = "", label: str = "", extra: list | None = None
    ) -> list[tuple[str, str]]:
        self.sequence += 1
        form = [
            ("AccountSid", "AC" + "0" * 32),
            ("ConferenceSid", self.sid),
            ("FriendlyName", self.name),
            ("StatusCallbackEvent", event),
            ("SequenceNumber", str(self.sequence)),
            ("Timestamp", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())),
        ]
        if call_sid:
            form += [
                ("CallSid", call_sid),
                ("ParticipantLabel", label),
                ("Muted", "false"),
                ("Hold", "false"),
                ("EndConferenceOnExit", str(label == "citizen").lower()),
                ("StartConferenceOnEnter", str(label != "citizen").lower()),
                ("Coaching", "false"),
            ]
        return form + list(extra or [])


@dataclass
class Leg:
    """A leg the hotline added: its call progress, as Twilio reports it."""

    call_sid: str
    to: str
    sequence: int = 0

    def progress(self, status: str) -> list[tuple[str, str]]:
        self.sequence += 1
        form = [
            ("AccountSid", "AC" + "0" * 32),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", self.call_sid),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("To", self.to),
            ("Called", self.to),
            ("SequenceNumber", str(self.sequence)),
            ("CallbackSource", "call-progress-events"),
        ]
        if status == "completed":
            form.append(("CallDuration", "3"))
        return form


def read_passes(folder: Path, began: float, finished: float) -> list[dict[str, Any]]:
    passes = []
    for path in folder.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if began <= record["start"] <= finished:
                passes.append(record)
    return passes


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
    }


def print_burst(label: str, f: dict[str, Any]) -> None:
    def row(name: str, p: dict[str, float] | None) -> str:
        if p is None:
            return f"  {name:<44} (none)"
        return (
            f"  {name:<44} p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  p99 {p['p99']:7.1f}  "
            f"max {p['max']:7.1f} ms  (n={p['n']})"
        )

    print(
        f"burst on {label}: {f['calls']} callers at once, {f['takers']} call-takers; "
        f"all queued after {f['all_queued_s']:.2f} s, last ring at {f['burst_s']:.2f} s; "
        f"{f['webhooks']} webhooks"
    )
    latency = f["latency_ms"]
    print(row("available -> participant create sent", latency))
    if latency is not None:
        verdict = "met" if latency["p99"] < GOAL_P99_MS else "NOT met"
        print(f"  {'':<44} goal: p99 < {GOAL_P99_MS:.0f} ms: {verdict}")
    print(row("  of which: available -> ring claimed (DB)", f["claimed_ms"]))
    print(
        f"  {f['availabilities']} availabilities after a call: {f['measured']} rung again, "
        f"{f['not_rung_again']} with nobody left for them"
    )
    print(row("console 'available' POST (commit + dispatch)", f["console_post_ms"]))
    print(row("one dispatch pass", f["pass_ms"]))
    by = ", ".join(f"{kind} {count}" for kind, count in sorted(f["passes_by"].items()))
    print(
        f"  decisions: {f['passes']} dispatch passes ({f['passes_per_s']:.1f}/s; {by}), "
        f"{f['passes_deciding']} reached assign ({f['decisions_per_s']:.1f}/s; "
        f"{f['passes_lost']} of them rang nobody: taken meanwhile), "
        f"{f['rings']} participants created ({f['assignments_per_s']:.1f}/s)"
    )
    cpu = f["cpu_s"]
    spent = ", ".join(f"{kind} {s:.1f}" for kind, s in cpu.items() if "machine" not in kind)
    window = f["run_s"]
    print(
        f"  CPU seconds over the {window:.1f} s run: {spent}; the whole machine "
        f"{cpu['the whole machine']:.1f} of {os.cpu_count() or 1} cores x {window:.1f} s "
        f"({cpu['the whole machine'] / window:.2f} cores busy)"
    )
    if f["problems"]:
        print("  CORRECTNESS: " + "; ".join(f["problems"]))
    else:
        print(
            f"  correct: each of the {f['calls']} calls rung through exactly once and answered; "
            "no call-taker rung again before they were free"
        )


def burst_on(
    backends: list[str], postgres_url: str | None, options: BurstOptions, workdir: Path
) -> bool:
    """One burst on each backend, each on a fresh migrated database; True when all were
    correct. The figures are printed as each burst ends."""
    tools = find_tools()
    correct = True
    with databases_for(backends, tools, workdir, postgres_url) as opened:
        for backend, databases in opened.items():
            folder = workdir / f"burst-{backend}"
            folder.mkdir()
            figures = Burst(databases, tools, options, folder).run()
            print_burst(databases.describe(), figures)
            correct &= not figures["problems"]
    return correct
