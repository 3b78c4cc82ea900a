"""``make bench-mcp``: the MCP tools through the official client over HTTP.

One user with 10,000 tasks in a bench database of its own; a uvicorn server process serves the
project's ASGI app on it; one MCP client session times ``list_tasks`` with a search (words
picked by how many of the user's tasks contain them) and ``add_task`` (for a second user, so the
searched data stays the same from run to run). The figures are end to end as the agent sees them:
client, HTTP over loopback, bearer check, tool, services/selectors, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from bench.benchmarks import (
    bench_server,
    conninfo,
    database_on_default_server,
    database_url,
    fmt,
    machine_line,
    p50_p95,
    server_env,
    write_section,
)
from bench.corpus import copy_layout, task_rows
from core.auth import issue_token

BENCH_DB = "todo_bench_mcp"
ALIAS = "bench_mcp"
READER = "bench-mcp-reader"
WRITER = "bench-mcp-writer"
# ts_stat's argument: the reader's words (its user id spelled out, ts_stat takes query text)
READER_WORDS = (
    "SELECT to_tsvector('simple', title || ' ' || description) FROM tasks_task "
    "WHERE user_id = 'bench-mcp-reader'"
)
GOAL_MS = 40
LISTEN_GOAL_MS = 100
WARMUP = 20
LISTENERS = 100
LISTEN_USER = "bench-mcp-listen-{}"
BULK_ITEMS = 50
BULK_LABEL = f"add_tasks, {BULK_ITEMS} items (bulk: {BULK_ITEMS} writes, no per-call goal)"


def _latest_sequence(user_id: str) -> int:
    with psycopg.connect(conninfo(BENCH_DB)) as conn:
        row = conn.execute(
            "SELECT last_sequence FROM events_usereventsequence WHERE user_id = %s", [user_id]
        ).fetchone()
    return row[0] if row else 0


MODERN = "2026-07-28"


def _listen_request(uri: str) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "subscriptions/listen",
        "params": {
            "notifications": {"resourceSubscriptions": [uri]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench-mcp", "version": "1"},
            },
        },
    }


async def _listen_and_change(base: str, samples: int) -> list[tuple[str, float]]:
    """``LISTENERS`` users each listen to one task of theirs; ``WARMUP + samples`` changes, one
    at a time, each to the next user's task, each waited for on that user's stream. Returns
    (user, wall-clock time the notification arrived) in the order of the changes."""
    import httpx

    users = [LISTEN_USER.format(k) for k in range(LISTENERS)]
    tokens = {user: issue_token(user, ttl_seconds=3600) for user in users}
    inboxes: dict[str, asyncio.Queue] = {user: asyncio.Queue() for user in users}
    limits = httpx.Limits(max_connections=LISTENERS + 10, max_keepalive_connections=20)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=httpx.Timeout(30, read=None)
    ) as client:

        def auth(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[user]}"}

        task_ids = {}
        for user in users:
            created = await client.post(
                "/api/tasks/", json={"title": "Listened"}, headers=auth(user)
            )
            task_ids[user] = created.json()["id"]
        acknowledged = [asyncio.Event() for _ in users]

        async def listen(user: str, ack: asyncio.Event) -> None:
            headers = {
                **auth(user),
                "Accept": "application/json, text/event-stream",
                "Mcp-Method": "subscriptions/listen",
                "MCP-Protocol-Version": MODERN,
            }
            body = _listen_request(f"task://{task_ids[user]}")
            async with client.stream("POST", "/mcp", json=body, headers=headers) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    method = json.loads(line[5:]).get("method")
                    if method == "notifications/subscriptions/acknowledged":
                        ack.set()
                    elif method == "notifications/resources/updated":
                        inboxes[user].put_nowait(time.time())

        streams = [
            asyncio.create_task(listen(user, ack))
            for user, ack in zip(users, acknowledged, strict=True)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(ack.wait() for ack in acknowledged)), 60)
            await _until_quiet(inboxes)
            arrivals = []
            for i in range(WARMUP + samples):
                user = users[i % LISTENERS]
                answer = await client.patch(
                    f"/api/tasks/{task_ids[user]}/",
                    json={"title": f"change {i}"},
                    headers=auth(user),
                )
                if answer.status_code != 200:
                    raise CommandError(f"REST change: {answer.status_code} {answer.text}")
                # The first changes may wait for the workers to catch up with older events.
                wait = 120 if i < WARMUP else 10
                arrivals.append((user, await asyncio.wait_for(inboxes[user].get(), wait)))
            return arrivals
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)


async def _until_quiet(inboxes: dict[str, asyncio.Queue], quiet: float = 3.0) -> None:
    """Let the workers catch up (the creations above, and older events of earlier runs, may
    still be on their way to the streams) and drop what they bring, so that each notification
    counted afterwards is the one of its change."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        if all(inbox.empty() for inbox in inboxes.values()):
            return
        for inbox in inboxes.values():
            while not inbox.empty():
                inbox.get_nowait()
    raise CommandError("the listen streams did not settle within 5 minutes")


def _commit_to_notification(arrivals: list[tuple[str, float]]) -> list[float]:
    """Each arrival minus its event's ``timestamp`` (taken just before the change commits);
    a user's n-th ``task.updated`` is the change its n-th notification is about."""
    users = sorted({user for user, _ in arrivals})
    with psycopg.connect(conninfo(BENCH_DB)) as conn:
        rows = conn.execute(
            "SELECT user_id, envelope->>'timestamp' FROM events_outboxevent "
            "WHERE user_id = ANY(%s) AND event_type = 'task.updated' ORDER BY user_id, sequence",
            [users],
        ).fetchall()
    recorded: dict[str, list[float]] = {user: [] for user in users}
    for user, stamp in rows:
        recorded[user].append(datetime.fromisoformat(stamp).timestamp())
    seen: dict[str, int] = dict.fromkeys(users, 0)
    latencies = []
    for user, arrived in arrivals:
        latencies.append((arrived - recorded[user][seen[user]]) * 1000)
        seen[user] += 1
    return latencies


@dataclass
class Sample:
    wall_ms: list[float]  # per call, as the client saw it
    server_cpu_ms: float  # the server process's CPU time per call (not slowed by other load)


@dataclass
class Row:
    label: str
    mcp: Sample
    rest: Sample | None  # the same request through REST; None: no goal for this row

    @property
    def has_goal(self) -> bool:
        return self.rest is not None and self.label != BULK_LABEL


class Command(BaseCommand):
    help = "Time list_tasks (search over 10,000 tasks) and add_task through the MCP client."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=10_000)
        parser.add_argument("--samples", type=int, default=200)
        parser.add_argument(
            "--reload", action="store_true", help="Recreate the bench database and its tasks."
        )
        parser.add_argument(
            "--no-report", action="store_true", help="Do not write docs/performance.md."
        )

    def handle(self, *args, tasks: int, samples: int, reload: bool, no_report: bool, **options):
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)  # one INFO line per request
        self._ensure_database(fresh=reload)
        self._load(tasks, reload)
        words = self._pick_words()
        self.stdout.write(f"search words: {words}")
        rows = self._time(words, samples)
        self.listen_ms = self._time_listen(samples)
        self.load = os.getloadavg()[1]  # 5-minute average: other processes share the machine
        table = self._table(rows, tasks, samples)
        self.stdout.write(table)
        if not no_report:
            self.stdout.write(f"written to {write_section('mcp', table)}")
        failed = [
            row.label for row in rows if row.has_goal and p50_p95(row.mcp.wall_ms)[1] > GOAL_MS
        ]
        if p50_p95(self.listen_ms)[1] > LISTEN_GOAL_MS:
            failed.append("subscriptions/listen")
        if failed:
            self.stderr.write(f"p95 above the goal: {', '.join(failed)}")

    # --- data -------------------------------------------------------------------------------
    def _ensure_database(self, *, fresh: bool) -> None:
        database_on_default_server(BENCH_DB, fresh=fresh)
        connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": BENCH_DB}
        call_command("migrate", database=ALIAS, verbosity=0, interactive=False)

    def _load(self, count: int, reload: bool) -> None:
        """COPY the reader's tasks (every check constraint and trigger of the table applies),
        and forget what earlier runs' add_task calls wrote."""
        with psycopg.connect(conninfo(BENCH_DB), autocommit=True) as conn:
            others = [WRITER, *(LISTEN_USER.format(k) for k in range(LISTENERS))]
            conn.execute("DELETE FROM tasks_task WHERE user_id = ANY(%s)", [others])
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                conn.execute("DELETE FROM events_outboxevent WHERE user_id = ANY(%s)", [others])
            have = conn.execute(
                "SELECT count(*) FROM tasks_task WHERE user_id = %s", [READER]
            ).fetchone()[0]
            if have == count and not reload:
                self.stdout.write(f"bench data present: {have:,} tasks")
                return
            self.stdout.write(f"loading {count:,} tasks for {READER} ...")
            started = time.perf_counter()
            conn.execute("DELETE FROM tasks_task WHERE user_id = %s", [READER])
            columns, defaults = copy_layout()
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY tasks_task ({columns}) FROM STDIN") as copy,
            ):
                for row in task_rows([READER], count, timezone.now()):
                    copy.write_row((*row, *defaults))
            conn.execute("VACUUM ANALYZE tasks_task")
            self.stdout.write(f"loaded in {time.perf_counter() - started:.1f} s")

    def _pick_words(self) -> dict[str, str]:
        """A word in ~10% of the tasks, one in ~1%, one in ~0.1%, and a prefix of a ~5% word."""
        with psycopg.connect(conninfo(BENCH_DB)) as conn:
            total = conn.execute(
                "SELECT count(*) FROM tasks_task WHERE user_id = %s", [READER]
            ).fetchone()[0]
            stats = conn.execute(
                "SELECT word, ndoc FROM ts_stat(%s) WHERE length(word) >= 4", [READER_WORDS]
            ).fetchall()
        shares = [(ndoc / max(total, 1), word) for word, ndoc in stats if word.isalpha()]
        if not shares:
            raise CommandError("no words to search for in the bench data")

        def nearest(share: float, exclude: set[str]) -> str:
            return min((abs(s - share), w) for s, w in shares if w not in exclude)[1]

        common = nearest(0.10, set())
        medium = nearest(0.01, {common})
        rare = nearest(0.001, {common, medium})
        prefix = nearest(0.05, {common, medium, rare})[:4]
        return {"common": common, "medium": medium, "rare": rare, "prefix": prefix}

    # --- timing -----------------------------------------------------------------------------
    def _time(self, words: dict[str, str], samples: int) -> list[Row]:
        env = server_env(database_url(BENCH_DB), RUN_WORKERS_IN_PROCESS="0")
        with bench_server(env) as (port, server):
            return asyncio.run(
                self._time_calls(f"http://127.0.0.1:{port}/mcp", words, samples, server.pid)
            )

    async def _time_calls(
        self, url: str, words: dict[str, str], samples: int, server_pid: int
    ) -> list[Row]:
        import httpx
        import httpx2
        import psutil
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        base = url.removesuffix("/mcp")
        common, medium, rare, prefix = (words[k] for k in ("common", "medium", "rare", "prefix"))
        # (label, MCP arguments, the same request through REST)
        searches = [
            (f"search, common word `{common}`", {"search": common}, {"q": common}),
            (f"search, medium word `{medium}`", {"search": medium}, {"q": medium}),
            (f"search, rare word `{rare}`", {"search": rare}, {"q": rare}),
            (f"search, prefix `{prefix}`", {"search": prefix}, {"q": prefix}),
            (
                "search, two words + pending, by due date",
                {"search": f"{common} {medium}", "status": "pending", "sort_by": "due_date"},
                {"q": f"{common} {medium}", "status": "pending", "ordering": "due_date"},
            ),
        ]
        rng = random.Random(5)

        def new_task(i: int) -> dict:
            return {
                "title": f"Benchmark task {i} {rng.choice(list(words.values()))}",
                "priority": rng.choice(["low", "medium", "high", "urgent"]),
                "tags": rng.sample(["work", "home", "errand", "finance"], 2),
                "due_date": f"2031-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T09:00:00Z",
                "reminder_time": "1h",
            }

        async def session_for(user: str):
            stack = contextlib.AsyncExitStack()
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=auth(user), timeout=120)
            )
            read, write = await stack.enter_async_context(
                streamable_http_client(url, http_client=http)
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await session.list_tools()  # the client checks results against the output schemas
            return stack, session

        def auth(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {issue_token(user, ttl_seconds=3600)}"}

        server_process = psutil.Process(server_pid)

        def server_cpu() -> float:
            times = server_process.cpu_times()
            return times.user + times.system

        async def sample_all(calls: dict) -> dict:
            """Round-robin over every call, so that load from other processes on a shared machine
            falls on all of them alike instead of on whichever ran during a burst."""
            wall: dict = {key: [] for key in calls}
            cpu: dict = dict.fromkeys(calls, 0.0)
            for i in range(WARMUP + samples):
                for key, call in calls.items():
                    cpu_before = server_cpu()
                    started = time.perf_counter()
                    await call(i)
                    elapsed = (time.perf_counter() - started) * 1000
                    if i >= WARMUP:
                        wall[key].append(elapsed)
                        cpu[key] += server_cpu() - cpu_before
            return {key: Sample(wall[key], cpu[key] * 1000 / samples) for key in calls}

        def mcp_call(session, name: str, arguments):
            async def call(i: int) -> None:
                result = await session.call_tool(name, arguments(i))
                if result.is_error and name != "update_task":
                    raise CommandError(f"{name}: {result.content[0].text}")

            return call

        def rest_call(client, method: str, path: str, **request):
            async def call(i: int) -> None:
                extra = {key: value(i) for key, value in request.items()}
                response = await client.request(method, path, **extra)
                if response.status_code >= 400:
                    raise CommandError(f"REST {path}: {response.status_code} {response.text}")

            return call

        reader_stack, reader = await session_for(READER)
        writer_stack, writer = await session_for(WRITER)
        rest_reader = httpx.AsyncClient(base_url=base, headers=auth(READER), timeout=30)
        rest_writer = httpx.AsyncClient(base_url=base, headers=auth(WRITER), timeout=30)
        floor_label = "MCP round trip, no database (a refused update_task)"
        add_label = "add_task (priority, tags, due date, reminder)"
        calls = {("mcp", floor_label): mcp_call(reader, "update_task", lambda i: {"task_id": 1})}
        for label, arguments, params in searches:
            calls["mcp", f"list_tasks, {label}"] = mcp_call(
                reader, "list_tasks", lambda i, a=arguments: a
            )
            calls["rest", f"list_tasks, {label}"] = rest_call(
                rest_reader, "GET", "/api/tasks/", params=lambda i, p=params: p
            )
        # Every other read tool on the 10,000 tasks, with REST's same request beside it.
        some_id = await self._some_task_id(reader)
        reads = [
            ("get_task", {"task_id": some_id}, f"/api/tasks/{some_id}/", {}),
            ("task_history", {"task_id": some_id}, f"/api/tasks/{some_id}/history/", {}),
            (
                "list_tasks",
                {"priority": ["high", "urgent"], "due": "this_month", "ordering": ["due_date"]},
                "/api/tasks/",
                {"priority": "high,urgent", "due": "this_month", "ordering": "due_date"},
            ),
            (
                "list_tasks",
                {"tags": ["work", "home"], "tags_mode": "any", "due_after": "2026-01-01"},
                "/api/tasks/",
                {"tags": "work,home", "tags_mode": "any", "due_after": "2026-01-01"},
            ),
            ("list_notifications", {}, "/api/notifications/", {}),
        ]
        for name, arguments, path, params in reads:
            label = f"{name} {json.dumps(arguments)}"
            calls["mcp", label] = mcp_call(reader, name, lambda i, a=arguments: a)
            calls["rest", label] = rest_call(rest_reader, "GET", path, params=lambda i, p=params: p)
        calls["mcp", add_label] = mcp_call(writer, "add_task", new_task)
        calls["rest", add_label] = rest_call(rest_writer, "POST", "/api/tasks/", json=new_task)
        # The series, trash and change-feed tools (the writer's events: the reader's tasks were
        # loaded without any), with REST's same request beside each.
        series_id = await self._recurring_task_id(writer)
        since = _latest_sequence(WRITER)
        others = [
            (reader, rest_reader, "list_trash", {}, "GET", "/api/tasks/trash/", {}),
            (
                writer,
                rest_writer,
                "changes_since",
                {"since": since, "limit": 50},
                "GET",
                "/api/changes/",
                {"params": {"since": since, "limit": 50}},
            ),
            (
                writer,
                rest_writer,
                "preview_occurrences",
                {"task_id": series_id, "count": 10},
                "GET",
                f"/api/tasks/{series_id}/occurrences/",
                {"params": {"count": 10}},
            ),
        ]
        for session, rest, name, arguments, method, path, request in others:
            label = f"{name} {json.dumps(arguments)}"
            calls["mcp", label] = mcp_call(session, name, lambda i, a=arguments: a)
            calls["rest", label] = rest_call(
                rest, method, path, **{k: (lambda i, v=v: v) for k, v in request.items()}
            )

        def moved(i: int) -> dict:
            return {"task_id": series_id, "due_date": f"2031-01-0{1 + i % 2}T09:00:00Z"}

        label = "reschedule_occurrence (one occurrence of a daily series)"
        calls["mcp", label] = mcp_call(writer, "reschedule_occurrence", moved)
        calls["rest", label] = rest_call(
            rest_writer,
            "PATCH",
            f"/api/tasks/{series_id}/",
            json=lambda i: {"due_date": moved(i + 1)["due_date"]},
        )
        bulk_label = BULK_LABEL
        calls["mcp", bulk_label] = mcp_call(
            writer,
            "add_tasks",
            lambda i: {"tasks": [new_task(i * BULK_ITEMS + k) for k in range(BULK_ITEMS)]},
        )
        calls["rest", bulk_label] = rest_call(
            rest_writer,
            "POST",
            "/api/tasks/bulk/",
            json=lambda i: {
                "operations": [
                    {"op": "create", "data": new_task(i * BULK_ITEMS + k)}
                    for k in range(BULK_ITEMS)
                ]
            },
        )
        async with reader_stack, writer_stack, rest_reader, rest_writer:
            measured = await sample_all(calls)
        labels = dict.fromkeys(label for _, label in calls)
        return [
            Row(label, measured["mcp", label], measured.get(("rest", label))) for label in labels
        ]

    # --- subscriptions/listen -----------------------------------------------------------------
    def _time_listen(self, samples: int) -> list[float]:
        """Commit to notification, in ms, with ``LISTENERS`` listen streams open (one user
        each): a REST change of one listener's task, then the wait for its stream's
        notification. A server with the in-process event workers, as the embedded mode runs."""
        env = server_env(database_url(BENCH_DB), RUN_WORKERS_IN_PROCESS="1")
        with bench_server(env) as (port, _server):
            received = asyncio.run(_listen_and_change(f"http://127.0.0.1:{port}", samples))
        return _commit_to_notification(received)[WARMUP:]

    @staticmethod
    async def _recurring_task_id(session) -> int:
        added = await session.call_tool(
            "add_task",
            {
                "title": "Bench series",
                "due_date": "2031-01-01T09:00:00Z",
                "recurrence_pattern": "daily",
            },
        )
        return added.structured_content["task_id"]

    @staticmethod
    async def _some_task_id(session) -> int:
        listed = await session.call_tool("list_tasks", {"limit": 1})
        return listed.structured_content["tasks"][0]["task_id"]

    def _table(self, rows: list[Row], tasks: int, samples: int) -> str:
        lines = [
            "## MCP tools (`python manage.py bench_mcp`)",
            "",
            f"One user with {tasks:,} tasks; {samples} calls per row after {WARMUP} warm-up calls, "
            "one at a time, the rows taking turns, from one session of the official `mcp` client "
            "(`streamable_http_client` + `ClientSession`) to a uvicorn process over loopback, "
            "page size 50. End to end as the agent sees it: client (including its output-schema "
            "check), HTTP, bearer JWT, tool, rate-limit counter, selector or service "
            "(transaction, outbox event), PostgreSQL. The REST column is the same request "
            "through `/api/tasks/` on the same server, so the difference is what MCP costs. "
            "Server CPU is the uvicorn process's CPU time per call (PostgreSQL's is not in it): "
            "unlike latency, other load on the machine does not inflate it. "
            f"Machine: {machine_line()}; load average over the run {self.load:.1f}.",
            "",
            "| call | p50 ms | p95 ms | goal p95 ms | | server CPU ms | REST p50 / p95 ms | REST server CPU ms |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
        ]
        for row in rows:
            p50, p95 = p50_p95(row.mcp.wall_ms)
            goal, verdict = ("", "")
            if row.has_goal:
                goal, verdict = GOAL_MS, "ok" if p95 <= GOAL_MS else "over"
            rest = rest_cpu = ""
            if row.rest:
                rest = " / ".join(fmt(v) for v in p50_p95(row.rest.wall_ms))
                rest_cpu = fmt(row.rest.server_cpu_ms)
            lines.append(
                f"| {row.label} | {fmt(p50)} | {fmt(p95)} | {goal} | {verdict} | "
                f"{fmt(row.mcp.server_cpu_ms)} | {rest} | {rest_cpu} |"
            )
        listen50, listen95 = p50_p95(self.listen_ms)
        verdict = "ok" if listen95 <= LISTEN_GOAL_MS else "over"
        lines.append(
            f"| subscriptions/listen, commit to notification, {LISTENERS} listening sessions | "
            f"{fmt(listen50)} | {fmt(listen95)} | {LISTEN_GOAL_MS} | {verdict} | | | |"
        )
        bulk = next(row for row in rows if row.label == BULK_LABEL)
        bulk_p50 = p50_p95(bulk.mcp.wall_ms)[0]
        rest_p50 = p50_p95(bulk.rest.wall_ms)[0] if bulk.rest else float("nan")
        lines += [
            "",
            f"Bulk throughput: `add_tasks` with {BULK_ITEMS} items creates "
            f"{BULK_ITEMS * 1000 / bulk_p50:,.0f} tasks/s at its p50 "
            f"({bulk_p50 / BULK_ITEMS:.2f} ms a task; REST's `POST /api/tasks/bulk/`: "
            f"{BULK_ITEMS * 1000 / rest_p50:,.0f} tasks/s). Listen latency: {samples} changes "
            f"through REST, one at a time, each to the task of the next of {LISTENERS} users "
            "who each hold a `subscriptions/listen` stream (2026-07-28) on a server running the "
            "in-process event workers; from the event's `timestamp` (taken in the change's "
            "transaction, just before its commit) to the notification's arrival at the client.",
        ]
        return "\n".join(lines) + "\n"
