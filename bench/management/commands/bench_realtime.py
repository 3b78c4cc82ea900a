"""``make bench-realtime``: change-to-frame latency with many sockets on one server process.

For each layer it starts a real server on a loopback port against a bench database, opens
``--sockets`` WebSockets spread evenly over ``--users`` users, creates ``--changes`` tasks
through REST at ``--rate`` per second (random users), and times every frame each of that user's
sockets receives:

- change to frame: from the event's timestamp (taken when the change is recorded, just before
  its commit) to the frame arriving at the client;
- request to frame: from the start of the REST request that made the change.

Layers: ``memory`` is the embedded mode (in-memory channel layer; relay and consumers inside the
server process); ``redis-pubsub`` and ``redis-core`` are the distributed layout (channels-redis at
``REDIS_URL`` or 127.0.0.1:6379, its Pub/Sub or its queue-based layer; the relay and
``run_consumer realtime`` as their own processes).
Everything stays on 127.0.0.1 and every wait is bounded.
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
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench.benchmarks import (
    database_on_default_server,
    database_url,
    fmt,
    free_port,
    machine_line,
    p50_p95,
    server_env,
    uvicorn_command,
    write_section,
)
from core.auth import issue_token

BENCH_DB = "todo_bench_realtime"
LAYERS = {
    "memory": "in-memory (embedded: relay and consumers in the server process)",
    "redis-pubsub": "channels-redis `RedisPubSubChannelLayer` (default with `REDIS_URL`; relay "
    "and `run_consumer realtime` as processes)",
    "redis-core": "channels-redis `RedisChannelLayer` (`REDIS_CHANNEL_LAYER=core`; same processes)",
}
GOAL_P95_MS = 100
PLAN_P95_MS = 2000


def _parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Run:
    layer: str
    sockets: int
    users: int
    changes: int
    connect_seconds: float = 0.0
    change_to_frame: list[float] = field(default_factory=list)  # ms
    request_to_frame: list[float] = field(default_factory=list)  # ms
    expected: int = 0
    received: int = 0
    misdelivered: int = 0
    duplicates: int = 0
    resyncs: int = 0
    closed: int = 0
    load: float = 0.0  # 1-minute load average when the measured changes ended


class Command(BaseCommand):
    help = (
        "Change-to-frame latency over WebSockets (1,000 sockets, 100 users), in-memory and Redis."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sockets", type=int, default=1000)
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--changes", type=int, default=300, help="Tasks created (measured).")
        parser.add_argument("--rate", type=float, default=30.0, help="Changes per second.")
        parser.add_argument(
            "--layers",
            default="memory,redis-pubsub,redis-core",
            help="Comma-separated: memory, redis-pubsub, redis-core.",
        )
        parser.add_argument("--settle", type=float, default=15.0, help="Max wait for last frames.")
        parser.add_argument("--no-report", action="store_true", help="Do not write the report.")

    def handle(self, *args, sockets, users, changes, rate, layers, settle, no_report, **options):
        if sockets < users or users < 1:
            raise CommandError("--sockets must be at least --users, and --users at least 1.")
        wanted = [name.strip() for name in layers.split(",") if name.strip()]
        unknown = set(wanted) - set(LAYERS)
        if unknown:
            raise CommandError(f"Unknown layer(s): {', '.join(sorted(unknown))}")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._raise_file_limit(sockets)
        self._prepare_database()
        runs = []
        for layer in wanted:
            self.stdout.write(f"[{layer}] starting the server and {sockets} sockets ...")
            run = self._run_layer(
                layer, sockets=sockets, users=users, changes=changes, rate=rate, settle=settle
            )
            runs.append(run)
            self.stdout.write(self._line(run))
        report = self._report(runs, rate=rate)
        self.stdout.write("\n" + report)
        if not no_report:
            path = write_section("realtime", report)
            self.stdout.write(f"\nwrote {path}")

    # --- set-up ----------------------------------------------------------------------------

    @staticmethod
    def _raise_file_limit(sockets: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = sockets * 2 + 512
        if soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            if target < need:
                raise CommandError(f"Open-file limit {hard} is too low for {sockets} sockets.")

    def _prepare_database(self) -> None:
        database_on_default_server(BENCH_DB)
        self.stdout.write(f"migrating the bench database {BENCH_DB} ...")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            env=self._env("memory"),
            cwd=settings.BASE_DIR,
            check=True,
            timeout=600,
        )

    def _env(self, layer: str) -> dict[str, str]:
        env = server_env(database_url(BENCH_DB), REALTIME_ALLOWED_ORIGINS="")
        if layer.startswith("redis"):
            env["REDIS_URL"] = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
            env["REDIS_CHANNEL_LAYER"] = layer.removeprefix("redis-")
            env["RUN_WORKERS_IN_PROCESS"] = "0"
        else:
            env["RUN_WORKERS_IN_PROCESS"] = "1"
        return env

    def _start(self, layer: str) -> tuple[str, list[subprocess.Popen]]:
        env = self._env(layer)
        port = free_port()
        limits = resource.getrlimit(resource.RLIMIT_NOFILE)

        def raise_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        manage = [sys.executable, "manage.py"]
        commands = [uvicorn_command(port)]
        if layer.startswith("redis"):
            commands.append([*manage, "relay_events", "--metrics-port", "0"])
            commands.append([*manage, "run_consumer", "realtime", "--metrics-port", "0"])
        processes = [
            subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, preexec_fn=raise_limit)
            for command in commands
        ]
        return f"127.0.0.1:{port}", processes

    @staticmethod
    def _stop(processes: list[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            if process.poll() is None:
                process.kill()
                process.wait(5)

    # --- one layer -------------------------------------------------------------------------

    def _run_layer(self, layer, *, sockets, users, changes, rate, settle) -> Run:
        address, processes = self._start(layer)
        try:
            return asyncio.run(
                _measure(
                    layer,
                    address,
                    processes,
                    sockets=sockets,
                    users=users,
                    changes=changes,
                    rate=rate,
                    settle=settle,
                )
            )
        finally:
            self._stop(processes)

    # --- output ----------------------------------------------------------------------------

    @staticmethod
    def _line(run: Run) -> str:
        p50, p95 = p50_p95(run.change_to_frame)
        r50, r95 = p50_p95(run.request_to_frame)
        return (
            f"[{run.layer}] change->frame p50 {fmt(p50)} ms, p95 {fmt(p95)} ms; "
            f"request->frame p50 {fmt(r50)} ms, p95 {fmt(r95)} ms; "
            f"frames {run.received}/{run.expected}, misdelivered {run.misdelivered}, "
            f"duplicates {run.duplicates}, resyncs {run.resyncs}, sockets lost {run.closed}, "
            f"connect {run.connect_seconds:.1f} s, load average {run.load:.1f}"
        )

    @staticmethod
    def _report(runs: list[Run], *, rate: float) -> str:
        first = runs[0]
        lines = [
            "## Realtime: change to WebSocket frame",
            "",
            f"`python manage.py bench_realtime` on {machine_line()}. One uvicorn server process, "
            f"{first.sockets} sockets over {first.users} users ({first.sockets // first.users} "
            f"per user), {first.changes} task creations through REST at {rate:g}/s on random "
            "users; every frame of every socket is timed. *Change to frame*: from the event's "
            "timestamp (recorded in the change's transaction) to the frame at the client. "
            "*Request to frame*: from the start of the REST request. Plan allowed "
            f"{PLAN_P95_MS} ms; our goal is p95 <= {GOAL_P95_MS} ms. *Load avg*: the machine's "
            "1-minute load when the changes ended; with 2 cores, above ~2 means other work "
            "competed for the CPU.",
            "",
            "| channel layer | change to frame p50 / p95 | request to frame p50 / p95 | frames received | misdelivered | load avg | goal |",
            "|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            p50, p95 = p50_p95(run.change_to_frame)
            r50, r95 = p50_p95(run.request_to_frame)
            layer = LAYERS[run.layer]
            verdict = "met" if p95 <= GOAL_P95_MS and run.received == run.expected else "missed"
            lines.append(
                f"| {layer} | {fmt(p50)} / {fmt(p95)} | {fmt(r50)} / {fmt(r95)} | "
                f"{run.received} / {run.expected} | {run.misdelivered} | {run.load:.1f} | {verdict} |"
            )
        return "\n".join(lines)


async def _wait_ready(address: str, processes: list[subprocess.Popen]) -> None:
    import httpx

    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as client:
        while time.monotonic() < deadline:
            for process in processes:
                if process.poll() is not None:
                    raise CommandError(f"a bench process exited during start-up: {process.args}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise CommandError("the bench server did not become ready")


async def _measure(layer, address, processes, *, sockets, users, changes, rate, settle) -> Run:
    import httpx
    from websockets.asyncio.client import connect

    await _wait_ready(address, processes)
    run = Run(layer=layer, sockets=sockets, users=users, changes=changes)
    tag = f"{layer}-{int(time.time())}"
    user_ids = [f"rt-bench-{n:03d}" for n in range(users)]
    tokens = {user: issue_token(user, ttl_seconds=3600) for user in user_ids}
    sent: dict[str, tuple[float, str]] = {}  # title -> (request start, user)
    seen: set[tuple[int, str]] = set()
    pending = {"frames": 0}
    done = asyncio.Event()

    async def reader(index: int, user: str, ws) -> None:
        try:
            await read(index, user, ws)
        except Exception:
            run.closed += 1

    async def read(index: int, user: str, ws) -> None:
        async for message in ws:
            arrived = time.time()
            frame = json.loads(message)
            if frame.get("type") == "resync":
                run.resyncs += 1
            if frame.get("type") != "event" or not frame.get("task"):
                continue
            title = frame["task"]["title"]
            if not title.startswith(f"bench {tag} "):
                continue
            origin = sent.get(title)
            if origin is None or origin[1] != user:
                run.misdelivered += 1
                continue
            if (index, title) in seen:
                run.duplicates += 1
                continue
            seen.add((index, title))
            run.received += 1
            run.change_to_frame.append((arrived - _parse_ts(frame["timestamp"])) * 1000)
            run.request_to_frame.append((arrived - origin[0]) * 1000)
            pending["frames"] -= 1
            if pending["frames"] <= 0 and len(sent) == changes:
                done.set()

    gate = asyncio.Semaphore(64)
    connections_open = []
    readers = []

    async def open_one(index: int) -> None:
        user = user_ids[index % users]
        async with gate:
            ws = await connect(
                f"ws://{address}/ws/tasks/",
                subprotocols=["bearer", tokens[user]],
                open_timeout=60,
                ping_interval=None,
                max_queue=None,
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if hello.get("type") != "hello":
                raise CommandError(f"expected hello, got {hello}")
        connections_open.append(ws)
        readers.append(asyncio.create_task(reader(index, user, ws)))

    started = time.monotonic()
    await asyncio.gather(*(open_one(index) for index in range(sockets)))
    run.connect_seconds = time.monotonic() - started
    per_user = {user: 0 for user in user_ids}
    for index in range(sockets):
        per_user[user_ids[index % users]] += 1

    rng = random.Random(11)
    writes = asyncio.Semaphore(16)
    errors: list[str] = []
    async with httpx.AsyncClient(
        base_url=f"http://{address}", timeout=30, limits=httpx.Limits(max_connections=16)
    ) as http:

        async def change(number: int) -> None:
            user = rng.choice(user_ids)
            title = f"bench {tag} {number}"
            async with writes:
                pending["frames"] += per_user[user]
                run.expected += per_user[user]
                sent[title] = (time.time(), user)
                response = await http.post(
                    "/api/tasks/",
                    json={"title": title, "priority": rng.choice(["low", "medium", "high"])},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
            if response.status_code != 201:
                errors.append(f"{response.status_code} {response.text[:200]}")

        # A short warm-up, not measured (its titles carry another tag).
        warm = [
            http.post(
                "/api/tasks/",
                json={"title": f"warm-up {n}"},
                headers={"Authorization": f"Bearer {tokens[user_ids[n % users]]}"},
            )
            for n in range(10)
        ]
        await asyncio.gather(*warm)
        await asyncio.sleep(1)

        began = time.monotonic()
        tasks = []
        for number in range(changes):
            delay = began + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(change(number)))
        await asyncio.gather(*tasks)
    run.load = os.getloadavg()[0]
    if errors:
        raise CommandError(f"{len(errors)} changes failed, e.g. {errors[0]}")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), settle)

    for task in readers:
        task.cancel()
    closing = asyncio.Semaphore(128)

    async def close(ws) -> None:
        async with closing:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)

    await asyncio.gather(*(close(ws) for ws in connections_open))
    return run
