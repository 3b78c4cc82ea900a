"""``python manage.py loadtest``: 1,000 simulated users at once against the embedded server.

The command starts the server itself (uvicorn, ``RUN_WORKERS_IN_PROCESS=1``: relay, consumers,
reminder scheduler and the in-memory channel layer inside the one server process, as ``make
run`` serves it) on a loopback port, against a bench database on the project's PostgreSQL, with
rate limits raised out of the way. Then each simulated user (an asyncio task):

- opens a WebSocket at ``/ws/tasks/`` (``Sec-WebSocket-Protocol: bearer, <jwt>``) and keeps it
  open, reconnecting with ``last_sequence`` if it drops, as the protocol asks;
- creates a couple of tasks to start with (not timed), then until ``--duration`` is up, after a
  random think time (exponential, mean ``--think`` seconds), does one of: list a page, search,
  create, update, complete, over REST through one shared ``httpx.AsyncClient`` whose pool is sized
  for a 2-core server.

Printed and written to ``docs/performance.md`` (section ``load``) and ``docs/reliability.md``:
error rate and p50/p95 per operation, change-to-frame latency, and the delivery check: every
change the server acknowledged reached its user's socket (task id + version), every event in
that user's log reached it (by sequence and event id), and no socket received anything that was
not its own user's. The query baseline (naive ``ILIKE``) is the ``queries`` section of the same
report, written by ``bench_queries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import benchmarks
from bench.benchmarks import (
    bench_server,
    database_on_default_server,
    fmt,
    machine_line,
    p50_p95,
    server_env,
)
from bench.reliability import invariants
from bench.reliability import report as reliability_report
from bench.reliability.processes import manage
from core import http_limits
from core.auth import issue_token

BENCH_DB = "todo_bench_load"
OPERATIONS = ("list", "search", "create", "update", "complete")
WEIGHTS = (35, 20, 20, 15, 10)
HTTP_POOL = 32  # two requests in flight per server thread (16) on 2 cores; the rest queue here
WORDS = [
    "report",
    "quarterly",
    "budget",
    "meeting",
    "dentist",
    "groceries",
    "invoice",
    "taxes",
    "garden",
    "laundry",
    "presentation",
    "review",
    "deploy",
    "release",
    "interview",
    "flight",
    "hotel",
    "birthday",
    "gym",
    "plumber",
]
SEARCHES = ("report", "meet", "budget review", "invoice", "dent", "flight hotel", "garden")


@dataclass
class User:
    id: str
    token: str
    rng: random.Random
    tasks: dict[int, bool] = field(default_factory=dict)  # task id -> completed
    acked: list[tuple[int, int]] = field(default_factory=list)  # (task id, version)
    frames: dict[int, dict] = field(default_factory=dict)  # sequence -> frame digest
    duplicates: int = 0
    connects: int = 0
    drops: int = 0
    resyncs: int = 0
    closed_codes: Counter = field(default_factory=Counter)

    def cursor(self) -> int:
        return max(self.frames, default=0)


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_flight: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_kinds: Counter = field(default_factory=Counter)
    change_to_frame: list[float] = field(default_factory=list)


class Command(BaseCommand):
    help = "1,000 concurrent simulated users (REST + an open WebSocket each) for a bounded time."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=1000)
        parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load.")
        parser.add_argument(
            "--think", type=float, default=20.0, help="Mean pause between a user's requests (s)."
        )
        parser.add_argument("--seed-tasks", type=int, default=2, help="Tasks per user at start.")
        parser.add_argument("--settle", type=float, default=30.0, help="Max wait for frames (s).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--no-report", action="store_true")

    def handle(self, *args, users, duration, think, seed_tasks, settle, seed, no_report, **opts):
        if users < 1 or duration <= 0 or think <= 0:
            raise CommandError("--users, --duration and --think must be positive")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._raise_file_limit(users)
        url, conninfo = database_on_default_server(BENCH_DB)
        env = server_env(url, RUN_WORKERS_IN_PROCESS="1")
        self.stdout.write(f"migrating {BENCH_DB} ...")
        subprocess.run(
            manage("migrate", "--verbosity", "0"),
            env=env,
            cwd=settings.BASE_DIR,
            check=True,
            timeout=600,
        )
        ws_pings = ("--ws-ping-interval", "20", "--ws-ping-timeout", "20")
        with bench_server(env, "--http", http_limits.PROTOCOL, *ws_pings) as (port, server):
            run = LoadRun(
                out=self.stdout,
                base=f"127.0.0.1:{port}",
                server=server,
                conninfo=conninfo,
                users=users,
                duration=duration,
                think=think,
                seed_tasks=seed_tasks,
                settle=settle,
                seed=seed,
            )
            asyncio.run(run.execute())
        markdown = run.markdown()
        self.stdout.write("\n" + markdown)
        if not no_report:
            self.stdout.write(f"\nwrote {benchmarks.write_section('load', markdown)}")
            summary = run.summary()
            self.stdout.write(f"wrote {reliability_report.write_section('load', summary)}")
        if run.problems():
            raise CommandError("; ".join(run.problems()))

    @staticmethod
    def _raise_file_limit(users: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = users * 2 + HTTP_POOL + 512  # client and server both hold one fd per socket
        if soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            if target < need:
                raise CommandError(
                    f"ulimit -n allows {hard} open files; {users} users need {need}."
                )


class LoadRun:
    def __init__(
        self, *, out, base, server, conninfo, users, duration, think, seed_tasks, settle, seed
    ):
        self.out = out
        self.base = base
        self.server = server
        self.conninfo = conninfo
        self.duration = duration
        self.think = think
        self.seed_tasks = seed_tasks
        self.settle = settle
        self.seed = seed
        run = uuid.uuid4().hex[:6]
        rng = random.Random(seed)
        self.users = [
            User(
                id=f"load-{run}-{n:04d}",
                token=issue_token(f"load-{run}-{n:04d}", ttl_seconds=4 * 3600),
                rng=random.Random(rng.random()),
            )
            for n in range(users)
        ]
        self.stats = Stats()
        self.gate = asyncio.Semaphore(HTTP_POOL)
        self.connect_seconds = 0.0
        self.load_seconds = 0.0
        self.settle_seconds = 0.0
        self.load_average = 0.0
        self.truth: dict[str, dict[int, str]] = {}
        self.missing_acked = 0
        self.missing_logged = 0
        self.foreign = 0
        self.unconnected = 0
        self.server_cpu = self.client_cpu = 0.0

    def say(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def execute(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=HTTP_POOL, max_keepalive_connections=HTTP_POOL)
        async with httpx.AsyncClient(
            base_url=f"http://{self.base}", timeout=30, limits=limits
        ) as http:
            self.say(f"opening {len(self.users)} WebSockets ...")
            began = time.monotonic()
            gate = asyncio.Semaphore(50)
            opened = [asyncio.Event() for _ in self.users]
            readers = [
                asyncio.create_task(self._socket(user, gate, ready))
                for user, ready in zip(self.users, opened, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), timeout=300)
            self.connect_seconds = time.monotonic() - began
            self.unconnected = sum(1 for user in self.users if user.connects == 0)
            self.say(f" {self.connect_seconds:.1f} s\nseeding {self.seed_tasks} tasks per user ...")
            began = time.monotonic()
            await asyncio.gather(*(self._seed(http, user) for user in self.users))
            self.say(f" {time.monotonic() - began:.1f} s\n")
            self.say(f"load: {self.duration:g} s, think time {self.think:g} s ...\n")
            began = time.monotonic()
            deadline = began + self.duration
            server_cpu, client_cpu = self._cpu()
            await asyncio.gather(*(self._behave(http, user, deadline) for user in self.users))
            self.load_seconds = time.monotonic() - began
            server_after, client_after = self._cpu()
            self.server_cpu = server_after - server_cpu
            self.client_cpu = client_after - client_cpu
            with contextlib.suppress(OSError):
                self.load_average = os.getloadavg()[0]
            self.say("waiting for the last frames ...\n")
            began = time.monotonic()
            await self._settle()
            self.settle_seconds = time.monotonic() - began
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        self._check()

    def _cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the server process and by this one."""
        import psutil

        server = psutil.Process(self.server.pid).cpu_times()
        client = psutil.Process().cpu_times()
        return server.user + server.system, client.user + client.system

    # --- sockets ----------------------------------------------------------------------------

    async def _socket(self, user: User, gate: asyncio.Semaphore, ready: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        pause = 0.5
        while True:
            try:
                async with gate:
                    ws = await connect(
                        f"ws://{self.base}/ws/tasks/?last_sequence={user.cursor()}",
                        subprotocols=["bearer", user.token],
                        open_timeout=60,
                        ping_interval=None,
                        close_timeout=2,
                        max_queue=None,
                    )
                user.connects += 1
                ready.set()
                pause = 0.5
                try:
                    async for message in ws:
                        self._frame(user, json.loads(message))
                except ConnectionClosed as closed:
                    user.drops += 1
                    user.closed_codes[closed.rcvd.code if closed.rcvd else 1006] += 1
                finally:
                    await ws.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused or timed out: try again, as a client would
                self.stats.error_kinds[f"websocket {type(exc).__name__}"] += 1
            ready.set()  # a user whose socket cannot open still runs (and shows as unconnected)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _frame(self, user: User, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "resync":
            user.resyncs += 1
        if kind != "event":
            return
        sequence = frame["sequence"]
        if sequence in user.frames:
            user.duplicates += 1
            return
        task = frame.get("task") or {}
        user.frames[sequence] = {
            "event_id": frame.get("event_id"),
            "task_id": frame.get("task_id"),
            "version": task.get("version"),
        }
        stamp = frame.get("timestamp")
        if stamp:
            committed = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            self.stats.change_to_frame.append((time.time() - committed) * 1000)

    # --- REST -------------------------------------------------------------------------------

    async def _request(self, http, user: User, op: str, method: str, path: str, **kwargs):
        import httpx

        started = time.perf_counter()
        self.stats.requests[op] += 1
        # Requests beyond the pool wait here, in order, rather than inside httpx's pool (whose
        # bookkeeping grows with its queue and would spend this process's CPU).
        async with self.gate:
            sent = time.perf_counter()
            try:
                response = await http.request(
                    method, path, headers={"Authorization": f"Bearer {user.token}"}, **kwargs
                )
            except httpx.HTTPError as exc:
                self.stats.errors[op] += 1
                self.stats.error_kinds[f"{op}: {type(exc).__name__}"] += 1
                return None
        done = time.perf_counter()
        self.stats.latency[op].append((done - started) * 1000)
        self.stats.in_flight[op].append((done - sent) * 1000)
        if response.status_code >= 400:
            self.stats.errors[op] += 1
            self.stats.error_kinds[f"{op}: HTTP {response.status_code}"] += 1
            return None
        return response

    def _title(self, rng: random.Random) -> str:
        return " ".join(rng.sample(WORDS, 3)).capitalize() + f" {rng.randrange(1000)}"

    async def _create(self, http, user: User, op: str = "create") -> None:
        rng = user.rng
        body = {
            "title": self._title(rng),
            "description": " ".join(rng.choices(WORDS, k=8)),
            "priority": rng.choice(["low", "medium", "high", "urgent"]),
            "tags": rng.sample(["work", "home", "errand", "health", "money"], 2),
        }
        if rng.random() < 0.5:
            body["due_date"] = f"2031-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T09:00:00Z"
        response = await self._request(http, user, op, "POST", "/api/tasks/", json=body)
        if response is not None:
            task = response.json()
            user.tasks[task["id"]] = False
            user.acked.append((task["id"], task["version"]))

    async def _seed(self, http, user: User) -> None:
        for _ in range(self.seed_tasks):
            await self._create(http, user, op="seed")

    async def _behave(self, http, user: User, deadline: float) -> None:
        rng = user.rng
        while True:
            pause = rng.expovariate(1 / self.think)
            if time.monotonic() + pause >= deadline:
                return
            await asyncio.sleep(pause)
            op = rng.choices(OPERATIONS, WEIGHTS)[0]
            pending = [task_id for task_id, done in user.tasks.items() if not done]
            if op in ("update", "complete") and not pending:
                op = "create"
            if op == "list":
                params = {
                    "limit": 20,
                    "ordering": rng.choice(["-priority", "due_date", "-created_at"]),
                }
                if rng.random() < 0.5:
                    params["status"] = "pending"
                await self._request(http, user, op, "GET", "/api/tasks/", params=params)
            elif op == "search":
                params = {"q": rng.choice(SEARCHES), "limit": 20}
                await self._request(http, user, op, "GET", "/api/tasks/", params=params)
            elif op == "create":
                await self._create(http, user)
            else:
                task_id = rng.choice(pending)
                if op == "update":
                    change = {"title": self._title(rng), "priority": rng.choice(["low", "high"])}
                    response = await self._request(
                        http, user, op, "PATCH", f"/api/tasks/{task_id}/", json=change
                    )
                else:
                    response = await self._request(
                        http, user, op, "POST", f"/api/tasks/{task_id}/complete/"
                    )
                if response is not None:
                    task = response.json()
                    user.tasks[task_id] = task["completed"]
                    user.acked.append((task_id, task["version"]))

    # --- delivery ---------------------------------------------------------------------------

    def _read_truth(self) -> dict[str, dict[int, str]]:
        prefix = self.users[0].id.rsplit("-", 1)[0] + "-"
        with psycopg.connect(self.conninfo) as conn, conn.cursor() as cursor:
            return invariants.user_logs(cursor, prefix)

    async def _settle(self) -> None:
        """Wait until every user's socket has caught up with that user's log (bounded)."""
        deadline = time.monotonic() + self.settle
        while True:
            self.truth = await asyncio.to_thread(self._read_truth)
            behind = sum(
                1 for user in self.users if user.cursor() < max(self.truth.get(user.id, {0: ""}))
            )
            if not behind or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)

    def _check(self) -> None:
        for user in self.users:
            mine = self.truth.get(user.id, {})
            received = {(f["task_id"], f["version"]) for f in user.frames.values()}
            self.missing_acked += sum(1 for key in user.acked if key not in received)
            self.missing_logged += len(set(mine) - set(user.frames))
            self.foreign += sum(
                1 for seq, f in user.frames.items() if mine.get(seq) != f["event_id"]
            )

    def problems(self) -> list[str]:
        found = []
        if self.missing_acked or self.missing_logged:
            found.append(
                f"{self.missing_acked} acknowledged changes and {self.missing_logged} logged "
                "events never reached their user's socket"
            )
        if self.foreign:
            found.append(f"{self.foreign} frames were not their socket's user's events")
        if self.unconnected:
            found.append(f"{self.unconnected} users never got a socket open")
        return found

    # --- report -----------------------------------------------------------------------------

    @property
    def total_requests(self) -> int:
        return sum(self.stats.requests[op] for op in OPERATIONS)

    @property
    def error_rate(self) -> float:
        errors = sum(self.stats.errors[op] for op in OPERATIONS)
        return 100 * errors / self.total_requests if self.total_requests else 0.0

    @property
    def throughput(self) -> float:
        return self.total_requests / self.load_seconds if self.load_seconds else float("nan")

    @property
    def per_request(self) -> float:
        """Server CPU milliseconds per request."""
        if not self.total_requests:
            return float("nan")
        return 1000 * self.server_cpu / self.total_requests

    @property
    def capacity(self) -> float:
        """Requests per second one server process on a core of its own would serve."""
        per_request = self.per_request
        return 1000 / per_request if per_request == per_request and per_request else float("nan")

    def markdown(self) -> str:
        rows = []
        for op in OPERATIONS:
            samples = self.stats.latency[op]
            errors = self.stats.errors[op]
            requests = self.stats.requests[op]
            p50, p95 = p50_p95(samples)
            f50, f95 = p50_p95(self.stats.in_flight[op])
            rate = 100 * errors / requests if requests else 0.0
            rows.append(
                f"| {op} | {requests} | {errors} ({rate:.2f} %) | {fmt(p50)} | {fmt(p95)} "
                f"| {fmt(f50)} | {fmt(f95)} |"
            )
        c50, c95 = p50_p95(self.stats.change_to_frame)
        acked = sum(len(user.acked) for user in self.users)
        logged = sum(len(events) for events in self.truth.values())
        frames = sum(len(user.frames) for user in self.users)
        drops = sum(user.drops for user in self.users)
        codes = Counter()
        for user in self.users:
            codes.update(user.closed_codes)
        kinds = ", ".join(f"{kind} x{n}" for kind, n in self.stats.error_kinds.most_common(6))
        verdict = "held" if not self.problems() else "BROKEN: " + "; ".join(self.problems())
        users = len(self.users)
        offered = users / self.think
        return f"""## Load: {users:,} concurrent users, each with an open WebSocket

`python manage.py loadtest --users {users} --duration {self.duration:g} --think {self.think:g}`
on {machine_line()}; 1-minute load average {self.load_average:.1f} when the load ended (2 cores:
above ~2 means other work competed for the CPU). One uvicorn process serves everything, as
`make run` does (relay, consumers, reminder scheduler and the in-memory channel layer inside it).
The client is one asyncio process on the same machine: {users:,} users, each holding a WebSocket
and sending a REST request after an exponential think time (mean {self.think:g} s, so about
{offered:.0f} requests/s offered) through a {HTTP_POOL}-connection pool. *p50/p95*: from the
user's action to the answer, waiting for a pooled connection included; *in flight*: from the
request leaving the pool to its answer (server time plus loopback). The query baseline (the naive
`ILIKE '%word%'` with only a user index) is the `queries` section of this report.

{users:,} sockets opened in {self.connect_seconds:.1f} s; {self.seed_tasks} tasks per user
created first (not timed); then {self.total_requests:,} requests in {self.load_seconds:.0f} s
({fmt(self.throughput)}/s); error rate {self.error_rate:.2f} %{f" ({kinds})" if kinds else ""}.
The server process used {self.server_cpu:.1f} CPU s in that time ({fmt(self.per_request)} ms per
request, the in-process workers and {users:,} sockets' upkeep included), so one server process on a
core of its own would serve about {fmt(self.capacity)} requests/s of this mix; the client used
{self.client_cpu:.1f} CPU s.

| operation | requests | errors | p50 ms | p95 ms | in flight p50 ms | in flight p95 ms |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Delivery: {logged:,} events in these users' logs, {frames:,} distinct frames received,
{acked:,} acknowledged changes. Every acknowledged change reached its user's socket (task id +
version), every logged event reached its user's socket (sequence + event id), and no socket got
another user's event: **{verdict}**. Commit to frame p50 {fmt(c50)} ms, p95 {fmt(c95)} ms;
sockets dropped {drops}{f" (close codes {dict(codes)})" if drops else ""}; frames received
twice {sum(u.duplicates for u in self.users)}; resyncs {sum(u.resyncs for u in self.users)}.
"""

    def summary(self) -> str:
        c50, c95 = p50_p95(self.stats.change_to_frame)
        per_op = ", ".join(f"{op} {fmt(p50_p95(self.stats.latency[op])[1])}" for op in OPERATIONS)
        verdict = (
            "nothing lost, nothing misdelivered"
            if not self.problems()
            else "; ".join(self.problems())
        )
        return f"""### Last run

`python manage.py loadtest --users {len(self.users)} --duration {self.duration:g} --think \
{self.think:g}` ({machine_line()}, load average {self.load_average:.1f}): {len(self.users):,}
simulated users, each with an open WebSocket, {fmt(self.throughput)} REST requests/s for
{self.load_seconds:.0f} s; error rate {self.error_rate:.2f} %; p95 ms per operation (waiting for
a connection included): {per_op}; commit to frame p50 {fmt(c50)} / p95 {fmt(c95)} ms;
delivery: **{verdict}**. The server process spent {fmt(self.per_request)} ms of CPU per request
(about {fmt(self.capacity)} requests/s per
server process on a core of its own). Details: `docs/performance.md`, section "Load"."""
