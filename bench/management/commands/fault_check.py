"""``python manage.py fault_check``: stream task changes in while processes die, then prove
that nothing was lost and nothing was applied twice.

Everything runs as its own process, as in a distributed deployment, so each can be killed:
the server (uvicorn, ``RUN_WORKERS_IN_PROCESS=0``), the relay (``relay_events``), the consumers
(``run_consumer audit|recurrence|notifications``, and ``realtime`` with Redis) and the reminder
scheduler (``run_reminder_scheduler``). Against a PostgreSQL cluster and a Redis of the run's
own (so restarting them disturbs nothing else on the machine), it:

1. streams REST changes from a few users (create, some recurring, some with reminders that come
   due during the run; update, move a reminder, complete, reopen, delete) and keeps a ledger of
   every change the server acknowledged;
2. at random moments ``kill -9``s each worker and the server at least once (then starts it again
   after a random pause), restarts PostgreSQL (``pg_ctl restart -m immediate``: a crash and
   recovery as far as clients can tell) and, with Redis, kills and restarts ``redis-server``;
3. with Redis, keeps one WebSocket per user open (reconnecting with ``last_sequence`` as the
   protocol says) and records every frame;
4. waits until the pipeline is idle, then checks ``bench.reliability.invariants`` and
   that each user's socket saw every one of that user's events, once, and no one else's.

Figures go to ``docs/reliability.md`` (section ``faults``). With ``DATABASE_URL`` the run uses a
database of its own on that server and skips the PostgreSQL restart (it cannot restart a server
it does not own), and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench.benchmarks import (
    database_on_default_server,
    machine_line,
    server_env,
    uvicorn_command,
)
from bench.reliability import invariants
from bench.reliability.processes import (
    PrivatePostgres,
    PrivateRedis,
    Worker,
    free_port,
    manage,
)
from bench.reliability.report import write_section
from core import http_limits
from core.auth import issue_token

DATABASE = "todo_faults"
USER_PREFIX = "fault-"
CONSUMERS = ("audit", "recurrence", "notifications")


@dataclass
class Mine:
    """What a streaming user believes about one of the tasks it created."""

    task_id: int
    recurring: bool
    reminder: bool
    completed: bool = False


@dataclass
class Fault:
    at: float  # seconds into the stream
    target: str
    downtime: float = 0.0
    took: float = 0.0


@dataclass
class SocketLog:
    user: str
    token: str
    frames: dict[int, str] = field(default_factory=dict)  # sequence -> event_id
    duplicates: int = 0
    conflicts: int = 0
    connects: int = 0
    resyncs: int = 0
    live_frames: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def cursor(self) -> int:
        n = 0
        while n + 1 in self.frames:
            n += 1
        return n

    def take(self, frame: dict) -> None:
        if frame.get("type") == "resync":
            self.resyncs += 1
        if frame.get("type") != "event":
            return
        sequence, event_id = frame["sequence"], frame.get("event_id")
        if sequence in self.frames:
            self.duplicates += 1
            if self.frames[sequence] != event_id:
                self.conflicts += 1
            return
        self.frames[sequence] = event_id


class Command(BaseCommand):
    help = (
        "Kill -9 the relay, consumers, scheduler and server, restart PostgreSQL and Redis, "
        "while changes stream in; then check that nothing was lost or applied twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=60.0, help="Seconds of streaming.")
        parser.add_argument("--users", type=int, default=6)
        parser.add_argument(
            "--rate", type=float, default=12.0, help="Changes per second, all users."
        )
        parser.add_argument(
            "--faults", type=int, default=0, help="Faults in all (default: each target twice)."
        )
        parser.add_argument("--redis", choices=["auto", "on", "off"], default="auto")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--settle", type=float, default=90.0, help="Max wait for idle (s).")
        parser.add_argument("--no-report", action="store_true")

    def handle(self, *args, duration, users, rate, faults, redis, seed, settle, no_report, **opts):
        if duration < 10 or users < 1 or rate <= 0:
            raise CommandError("--duration must be >= 10, --users >= 1, --rate > 0")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        use_redis = redis == "on" or (redis == "auto" and PrivateRedis.available())
        if redis == "on" and not PrivateRedis.available():
            raise CommandError("--redis on needs redis-server on the PATH")
        seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
        run = FaultRun(
            self,
            duration=duration,
            users=users,
            rate=rate,
            faults=faults,
            use_redis=use_redis,
            seed=seed,
            settle=settle,
        )
        try:
            result = run.execute()
        finally:
            run.cleanup()
        self.stdout.write("\n" + result.markdown)
        if not no_report:
            self.stdout.write(f"\nwrote {write_section('faults', result.markdown)}")
        if not result.ok:
            raise CommandError("invariants broken: " + "; ".join(result.problems[:10]))


@dataclass
class Result:
    ok: bool
    problems: list[str]
    markdown: str


class FaultRun:
    def __init__(self, command, *, duration, users, rate, faults, use_redis, seed, settle):
        self.out = command.stdout
        self.duration = duration
        self.users = [f"{USER_PREFIX}{n:02d}" for n in range(users)]
        self.tokens = {user: issue_token(user, ttl_seconds=3600) for user in self.users}
        self.rate = rate
        self.use_redis = use_redis
        self.seed = seed
        self.rng = random.Random(seed)
        self.settle = settle
        self.base = Path(settings.BASE_DIR)
        runs = self.base / ".data" / "faults"
        for stale in sorted(runs.glob("2*"))[:-4]:  # keep the logs of the last few runs
            shutil.rmtree(stale, ignore_errors=True)
        self.logs = runs / time.strftime("%Y%m%d-%H%M%S")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.workers: dict[str, Worker] = {}
        self.ledger: list[invariants.Ack] = []
        self.outcomes: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.sockets = {user: SocketLog(user, self.tokens[user]) for user in self.users}
        self.port = free_port()
        self.consumer_names = (*CONSUMERS, "realtime") if use_redis else CONSUMERS
        targets = ["relay", *(f"consumer-{name}" for name in CONSUMERS), "scheduler", "server"]
        if self.use_redis:
            targets += ["consumer-realtime", "redis"]
        self.targets = [*targets, "postgres"]
        self.fault_count = faults or 2 * len(self.targets)
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # --- set-up ---------------------------------------------------------------------------

    def _database(self) -> tuple[str, str]:
        """(DATABASE_URL for the processes, conninfo for this one), on a fresh database."""
        if not settings.EMBEDDED_DATABASE:
            return database_on_default_server(DATABASE, fresh=True)
        self.postgres = PrivatePostgres(self.base / ".data" / "faults-postgres").start()
        admin = self.postgres.conninfo("postgres")
        url, conninfo = self.postgres.url(DATABASE), self.postgres.conninfo(DATABASE)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return url, conninfo

    def _env(self, url: str) -> dict[str, str]:
        env = server_env(
            url,
            RUN_WORKERS_IN_PROCESS="0",
            LOG_FORMAT="text",
            METRICS_PORT="0",
            PYTHONUNBUFFERED="1",
        )
        env.pop("EMBEDDED_PG_DIR", None)
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        return env

    def _workers(self, env: dict[str, str]) -> None:
        commands = {
            "server": uvicorn_command(self.port, "--http", http_limits.PROTOCOL),
            "relay": manage("relay_events", "--metrics-port", "0"),
            "scheduler": manage(
                "run_reminder_scheduler", "--metrics-port", "0", "--max-sleep", "1"
            ),
        }
        for name in self.consumer_names:
            commands[f"consumer-{name}"] = manage("run_consumer", name, "--metrics-port", "0")
        for name, argv in commands.items():
            self.workers[name] = Worker(name, argv, env=env, cwd=self.base, logs=self.logs).start()

    def cleanup(self) -> None:
        for worker in self.workers.values():
            worker.stop(timeout=10)
        if self.redis is not None:
            self.redis.stop()
        # The private cluster stays (stopped) in .data/faults-postgres for the next run.
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()

    # --- the run ----------------------------------------------------------------------------

    def execute(self) -> Result:
        began = time.monotonic()
        self.say(f"seed {self.seed}; logs in {self.logs}\n")
        url, conninfo = self._database()
        if self.use_redis:
            self.redis = PrivateRedis(self.logs / "redis").start()
        env = self._env(url)
        self.say("migrating a fresh database ...\n")
        subprocess.run(
            manage("migrate", "--verbosity", "0"), env=env, cwd=self.base, check=True, timeout=600
        )
        self.timings["set-up"] = time.monotonic() - began
        self._workers(env)
        idle = asyncio.run(self._main(conninfo))
        with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
            report = invariants.check(
                cursor,
                user_prefix=USER_PREFIX,
                consumers=invariants.ConsumerSpec.registered(*self.consumer_names),
                ledger=self.ledger,
            )
            socket_checks = self._socket_checks(cursor) if self.use_redis else []
        self.timings["total"] = time.monotonic() - began
        problems = report.problems(50) + [p for _, _, p in socket_checks if p]
        if not idle:
            problems.insert(0, "the pipeline did not go idle in time")
        for line in report.lines():
            self.say(line + "\n")
        for name, checked, problem in socket_checks:
            self.say(f"{'FAIL' if problem else 'ok  '} {name} ({checked} checked)\n")
        for problem in problems[:20]:
            self.say(f"  {problem}\n")
        self.say(f"logs of every process (database outages show there as warnings): {self.logs}\n")
        return Result(
            ok=not problems,
            problems=problems,
            markdown=self._markdown(report, socket_checks, problems),
        )

    async def _main(self, conninfo: str) -> bool:
        """Stream with faults; then, with every process up again, let the pipeline drain
        (sockets keep reading meanwhile) and let each socket resume. True when it went idle."""
        import httpx

        await self._wait_ready()
        self.say(
            f"streaming {self.duration:.0f} s from {len(self.users)} users at {self.rate:g}/s, "
            f"{self.fault_count} faults over {', '.join(self.targets)} ...\n"
        )
        start = time.monotonic()
        deadline = start + self.duration
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        sockets = [
            asyncio.create_task(self._socket(log))
            for log in (self.sockets.values() if self.use_redis else ())
        ]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=10, limits=limits
        ) as http:
            writers = [
                asyncio.create_task(self._user(http, user, start, deadline)) for user in self.users
            ]
            await asyncio.gather(*writers, self._chaos(start))
        self.say("stream over; waiting for the pipeline to go idle ...\n")
        settle_began = time.monotonic()
        for worker in self.workers.values():
            if not worker.running:
                worker.start()
        idle = await asyncio.to_thread(self._wait_idle, conninfo)
        self.timings["settle"] = time.monotonic() - settle_began
        for task in sockets:
            task.cancel()
        await asyncio.gather(*sockets, return_exceptions=True)
        if self.use_redis:
            await self._final_resume(conninfo)
        return idle

    async def _wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                server = self.workers["server"]
                if not server.running:
                    raise CommandError(f"the server exited at start:\n{server.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise CommandError("the server did not become ready")

    # --- writers ----------------------------------------------------------------------------

    async def _call(self, http, user: str, method: str, path: str, **kwargs):
        import httpx

        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        try:
            response = await http.request(method, path, headers=headers, **kwargs)
        except httpx.ConnectError:
            self.outcomes["refused (server down, not sent)"] += 1
            return None
        except httpx.HTTPError:
            self.outcomes["lost in flight (outcome unknown)"] += 1
            return None
        if response.status_code >= 500:
            self.outcomes[f"answered {response.status_code}"] += 1
            return None
        return response

    async def _user(self, http, user: str, start: float, deadline: float) -> None:
        rng = random.Random(f"{self.seed}-{user}")
        mine: dict[int, Mine] = {}
        interval = len(self.users) / self.rate
        await asyncio.sleep(rng.uniform(0, interval))
        while time.monotonic() < deadline:
            await self._one_change(http, user, rng, mine, deadline)
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))

    def _ack(self, task_id: int, kind: str, body: dict | None) -> None:
        version = body.get("version") if body else None
        self.ledger.append(invariants.Ack(task_id=task_id, kind=kind, version=version))
        self.outcomes[f"{kind} acknowledged"] += 1

    async def _one_change(self, http, user, rng, mine: dict[int, Mine], deadline: float) -> None:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        left = deadline - time.monotonic()
        roll = rng.random()
        if not mine or roll < 0.3:
            body: dict = {"title": f"task {rng.randrange(10**6)}", "priority": "high"}
            kind = rng.random()
            recurring = kind < 0.35
            reminder = not recurring and kind < 0.7 and left > 8
            if recurring:
                # Due in the past or soon: completing it makes the next instance now.
                due = now + timedelta(minutes=rng.choice([-90, -5, 3, 30]))
                body |= {"due_date": due.isoformat(), "recurrence_pattern": "daily"}
            elif reminder:
                fire = now + timedelta(seconds=rng.uniform(3, min(15, left - 3)))
                body |= {
                    "due_date": (now + timedelta(hours=1)).isoformat(),
                    "reminder_time": fire.isoformat(),
                }
            response = await self._call(http, user, "POST", "/api/tasks/", json=body)
            if response is not None and response.status_code == 201:
                task = response.json()
                mine[task["id"]] = Mine(task["id"], recurring, reminder)
                self._ack(task["id"], "created", task)
            elif response is not None:
                self.outcomes[f"create answered {response.status_code}"] += 1
            return
        task = mine[rng.choice(sorted(mine))]
        path = f"/api/tasks/{task.task_id}/"
        if roll < 0.55:
            change = {"title": f"renamed {rng.randrange(10**6)}"}
            if task.reminder and rng.random() < 0.4 and left > 8:
                fire = now + timedelta(seconds=rng.uniform(3, min(12, left - 3)))
                change["reminder_time"] = fire.isoformat()
            method, kind, kwargs = "PATCH", "updated", {"json": change}
        elif roll < 0.78 and not task.completed:
            method, kind, kwargs, path = "POST", "completed", {}, path + "complete/"
        elif roll < 0.88 and task.completed:
            method, kind, kwargs, path = "POST", "reopened", {}, path + "reopen/"
        elif roll >= 0.88:
            stop = "true" if task.recurring and rng.random() < 0.5 else "false"
            method, kind, kwargs = "DELETE", "deleted", {"params": {"stop_series": stop}}
        else:
            return
        response = await self._call(http, user, method, path, **kwargs)
        if response is None:
            return
        if response.status_code == 404:
            mine.pop(task.task_id, None)  # an earlier delete did commit after all
            self.outcomes["404 (deleted by a lost request)"] += 1
        elif response.status_code == 204:
            mine.pop(task.task_id, None)
            self._ack(task.task_id, kind, None)
        elif response.status_code == 200:
            body = response.json()
            task.completed = body["completed"]
            self._ack(task.task_id, kind, body)
        else:
            self.outcomes[f"{kind} answered {response.status_code}"] += 1

    # --- faults -----------------------------------------------------------------------------

    def _schedule(self) -> list[Fault]:
        targets = list(self.targets)
        self.rng.shuffle(targets)
        while len(targets) < self.fault_count:
            targets.append(self.rng.choice(self.targets))
        span = (0.08 * self.duration, 0.85 * self.duration)
        times = sorted(self.rng.uniform(*span) for _ in targets)
        return [Fault(at=at, target=target) for at, target in zip(times, targets, strict=True)]

    async def _chaos(self, start: float) -> None:
        for fault in self._schedule():
            await asyncio.sleep(max(0.0, start + fault.at - time.monotonic()))
            began = time.monotonic()
            if fault.target == "postgres":
                if self.postgres is None:
                    continue  # an external server: not ours to restart
                await asyncio.to_thread(self.postgres.restart)
            elif fault.target == "redis":
                await asyncio.to_thread(self.redis.restart)
            else:
                worker = self.workers[fault.target]
                if not worker.running:
                    continue  # still down from the previous fault
                fault.downtime = self.rng.uniform(0.1, 2.0)
                await asyncio.to_thread(worker.kill9)
                await asyncio.sleep(fault.downtime)
                worker.start()
            fault.took = time.monotonic() - began
            self.faults.append(fault)
            self.say(f"  {fault.at:5.1f} s  {_verb(fault.target)} ({fault.took:.1f} s)\n")

    # --- sockets ----------------------------------------------------------------------------

    async def _socket(self, log: SocketLog, *, until: int | None = None) -> None:
        """Read the user's socket, reconnecting with ``last_sequence``, until cancelled (or,
        with ``until``, until every sequence up to it has arrived)."""
        from websockets.asyncio.client import connect

        pause = 0.2
        while until is None or log.cursor() < until:
            url = f"ws://127.0.0.1:{self.port}/ws/tasks/?last_sequence={log.cursor()}"
            try:
                async with connect(
                    url,
                    subprotocols=["bearer", log.token],
                    open_timeout=10,
                    ping_interval=None,
                    close_timeout=1,
                    max_queue=None,
                ) as ws:
                    log.connects += 1
                    pause = 0.2
                    async for message in ws:
                        log.take(json.loads(message))
                        if until is not None and log.cursor() >= until:
                            return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused while the server is down, dropped by a kill
                log.errors[type(exc).__name__] += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _final_resume(self, conninfo: str) -> None:
        """The live path had its chance while the pipeline drained; now each client does what
        the protocol tells a client to do after any interruption: reconnect with its cursor."""
        with psycopg.connect(conninfo) as conn:
            last = dict(
                conn.execute(
                    "SELECT user_id, last_sequence FROM events_usereventsequence "
                    "WHERE user_id LIKE %s",
                    [USER_PREFIX + "%"],
                ).fetchall()
            )
        for log in self.sockets.values():
            log.live_frames = len(log.frames)
        await asyncio.gather(
            *(
                asyncio.wait_for(self._socket(log, until=last.get(log.user, 0)), 30)
                for log in self.sockets.values()
            ),
            return_exceptions=True,
        )

    def _socket_checks(self, cursor) -> list[tuple[str, int, str]]:
        truth = invariants.user_logs(cursor, USER_PREFIX)
        checks = []
        missing = foreign = 0
        total = 0
        for log in self.sockets.values():
            expected = truth.get(log.user, {})
            total += len(expected)
            missing += len(set(expected) - set(log.frames))
            foreign += (
                sum(1 for seq, event_id in log.frames.items() if expected.get(seq) != event_id)
                + log.conflicts
            )
        checks.append(
            (
                "every user's socket got every one of their events",
                total,
                f"{missing} events never reached their user's socket" if missing else "",
            )
        )
        checks.append(
            (
                "no socket got another user's event",
                sum(len(log.frames) for log in self.sockets.values()),
                f"{foreign} frames were not this user's events" if foreign else "",
            )
        )
        return checks

    # --- idle -------------------------------------------------------------------------------

    def _wait_idle(self, conninfo: str) -> bool:
        """Nothing unsent, every consumer at the end of its topic, no reminder overdue; twice
        in a row, a second apart."""
        specs = invariants.ConsumerSpec.registered(*self.consumer_names)
        deadline = time.monotonic() + self.settle
        quiet = 0
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(conninfo, connect_timeout=5) as conn, conn.cursor() as cur:
                    busy = invariants.backlog(cur, specs)
            except psycopg.Error:
                busy = -1
            quiet = quiet + 1 if busy == 0 else 0
            if quiet >= 2:
                return True
            time.sleep(1.0)
        return False

    # --- report -----------------------------------------------------------------------------

    def _markdown(self, report, socket_checks, problems) -> str:
        by_target = Counter(fault.target for fault in self.faults)
        fault_rows = "\n".join(
            f"| {_verb(target)} | {by_target[target]} |" for target in self.targets
        )
        check_rows = "\n".join(
            f"| {check.name} | {check.checked} | {'held' if not check.problems else 'BROKEN'} |"
            for check in report.checks
        ) + "".join(
            f"\n| {name} | {checked} | {'held' if not problem else 'BROKEN'} |"
            for name, checked, problem in socket_checks
        )
        outcome_rows = "\n".join(
            f"| {name} | {count} |" for name, count in sorted(self.outcomes.items())
        )
        pg_note = (
            "restarted with `pg_ctl restart -m immediate` (a crash and WAL recovery)"
            if self.postgres is not None
            else "not restarted: `DATABASE_URL` names a server this run does not own"
        )
        sockets = ""
        if self.use_redis:
            live = sum(log.live_frames for log in self.sockets.values())
            frames = sum(len(log.frames) for log in self.sockets.values())
            sockets = (
                f"\n\nWebSockets (one per user, channels-redis): {frames} distinct events "
                f"received, {live} of them live and {frames - live} by the final resume "
                f"(`?last_sequence=`), {sum(log.connects for log in self.sockets.values())} "
                f"connections, {sum(log.duplicates for log in self.sockets.values())} frames "
                f"received twice (dropped by sequence, as clients do), "
                f"{sum(log.resyncs for log in self.sockets.values())} resyncs."
            )
        verdict = (
            "**Every invariant held.**"
            if not problems
            else "**Broken:** " + "; ".join(problems[:5])
        )
        counts = report.counts
        return f"""### Last run

`python manage.py fault_check --duration {self.duration:g} --users {len(self.users)} --rate \
{self.rate:g}{" --redis on" if self.use_redis else " --redis off"} --seed {self.seed}` on \
{machine_line()}; {self.timings.get("total", 0):.0f} s in all ({self.timings.get("set-up", 0):.0f} s \
set-up, {self.duration:g} s streaming, {self.timings.get("settle", 0):.0f} s to drain). Server \
(uvicorn, `RUN_WORKERS_IN_PROCESS=0`), relay, consumers ({", ".join(CONSUMERS)}\
{", realtime" if self.use_redis else ""}) and reminder scheduler each in its own process; a \
PostgreSQL cluster{" and a Redis" if self.use_redis else ""} of the run's own. PostgreSQL was \
{pg_note}.

{verdict} {counts.get("events", 0)} events from {counts.get("tasks", 0)} tasks of \
{counts.get("users", 0)} users ({", ".join(f"{k[7:]} {v}" for k, v in counts.items() if k.startswith("events."))}).

| fault | times |
|---|---|
{fault_rows}

| invariant | checked | |
|---|---|---|
{check_rows}

| what the streaming clients saw | requests |
|---|---|
{outcome_rows}{sockets}
"""


def _verb(target: str) -> str:
    if target == "postgres":
        return "PostgreSQL restarted (immediate)"
    if target == "redis":
        return "redis-server killed and restarted"
    if target == "server":
        return "server (uvicorn) kill -9, restarted"
    return f"{target} kill -9, restarted"
