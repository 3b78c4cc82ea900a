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
import logging
import os
import random
import time
from dataclasses import dataclass

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
from bench.corpus import task_rows
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
WARMUP = 20
COPY_COLUMNS = (
    "user_id, title, description, completed, completed_at, priority, tags, due_at, created_at, "
    "updated_at, recurrence_rule, series_index, timezone, version"
)


@dataclass
class Sample:
    wall_ms: list[float]  # per call, as the client saw it
    server_cpu_ms: float  # the server process's CPU time per call (not slowed by other load)


@dataclass
class Row:
    label: str
    mcp: Sample
    rest: Sample | None  # the same request through REST; None: no goal for this row


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
        self.load = os.getloadavg()[1]  # 5-minute average: other processes share the machine
        table = self._table(rows, tasks, samples)
        self.stdout.write(table)
        if not no_report:
            self.stdout.write(f"written to {write_section('mcp', table)}")
        failed = [row.label for row in rows if row.rest and p50_p95(row.mcp.wall_ms)[1] > GOAL_MS]
        if failed:
            self.stderr.write(f"p95 above the {GOAL_MS} ms goal: {', '.join(failed)}")

    # --- data -------------------------------------------------------------------------------
    def _ensure_database(self, *, fresh: bool) -> None:
        database_on_default_server(BENCH_DB, fresh=fresh)
        connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": BENCH_DB}
        call_command("migrate", database=ALIAS, verbosity=0, interactive=False)

    def _load(self, count: int, reload: bool) -> None:
        """COPY the reader's tasks (every check constraint and trigger of the table applies),
        and forget what earlier runs' add_task calls wrote."""
        with psycopg.connect(conninfo(BENCH_DB), autocommit=True) as conn:
            conn.execute("DELETE FROM tasks_task WHERE user_id = %s", [WRITER])
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                conn.execute("DELETE FROM events_outboxevent WHERE user_id = %s", [WRITER])
            have = conn.execute(
                "SELECT count(*) FROM tasks_task WHERE user_id = %s", [READER]
            ).fetchone()[0]
            if have == count and not reload:
                self.stdout.write(f"bench data present: {have:,} tasks")
                return
            self.stdout.write(f"loading {count:,} tasks for {READER} ...")
            started = time.perf_counter()
            conn.execute("DELETE FROM tasks_task WHERE user_id = %s", [READER])
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY tasks_task ({COPY_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in task_rows([READER], count, timezone.now()):
                    copy.write_row((*row, "none", 0, "UTC", 1))
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
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=auth(user)))
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
        calls["mcp", add_label] = mcp_call(writer, "add_task", new_task)
        calls["rest", add_label] = rest_call(rest_writer, "POST", "/api/tasks/", json=new_task)
        async with reader_stack, writer_stack, rest_reader, rest_writer:
            measured = await sample_all(calls)
        labels = dict.fromkeys(label for _, label in calls)
        return [
            Row(label, measured["mcp", label], measured.get(("rest", label))) for label in labels
        ]

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
            goal, verdict = (GOAL_MS, "ok" if p95 <= GOAL_MS else "over") if row.rest else ("", "")
            rest = rest_cpu = ""
            if row.rest:
                rest = " / ".join(fmt(v) for v in p50_p95(row.rest.wall_ms))
                rest_cpu = fmt(row.rest.server_cpu_ms)
            lines.append(
                f"| {row.label} | {fmt(p50)} | {fmt(p95)} | {goal} | {verdict} | "
                f"{fmt(row.mcp.server_cpu_ms)} | {rest} | {rest_cpu} |"
            )
        return "\n".join(lines) + "\n"
