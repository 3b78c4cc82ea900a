"""``make bench-search-migration``: migration 0006 (the multilingual search vector) on a million
rows while a user keeps writing and reading.

A fresh bench database at ``tasks 0005`` gets ``--rows`` tasks from the query benchmark's corpus,
with their English-only generated search vectors and their lexicon. A writer (insert a task,
rename one, complete one, in turns) and a reader (a page of one user's pending tasks) then run at
a steady rate, each on its own connection in autocommit as a request does, for ``--baseline``
seconds before and for the whole of ``migrate tasks 0006_multilingual_search``. Reported: the
migration's time and its phases (from the lines it prints: the backfill's seconds, the swap's
milliseconds), each operation's latency before and during it, the longest wait between two
finished writes, and every failed operation.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils import timezone

from bench.benchmarks import (
    conninfo,
    database_on_default_server,
    fmt,
    machine_line,
    no_query_log,
    p50_p95,
    write_section,
)
from bench.corpus import COMMON_WORDS, FOREIGN, copy_layout, task_rows

BENCH_DB = "todo_bench_migration"
ALIAS = "bench_migration"
BEFORE = "0005_task_series_skip_trash"
TARGET = "0006_multilingual_search"
# Secondary indexes that back no constraint: dropped for the load and built again after it.
INDEXES_SQL = (
    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'tasks_task'::regclass "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid)"
)
INSERT_SQL = (
    "INSERT INTO tasks_task (user_id, title, description, completed, priority, tags, "
    "recurrence_rule, series_index, series_anchor_index, repeat_from, timezone, created_at, "
    "updated_at, version) VALUES (%s, %s, %s, false, 2, '[\"work\"]'::jsonb, 'none', 0, 0, 'due', "
    "'UTC', now(), now(), 1)"
)
RENAME_SQL = (
    "UPDATE tasks_task SET title = %s, updated_at = now(), version = version + 1 WHERE id = %s"
)
COMPLETE_SQL = (
    "UPDATE tasks_task SET completed = true, completed_at = now(), updated_at = now(), "
    "version = version + 1 WHERE id = %s AND NOT completed AND skipped_at IS NULL"
)
PAGE_SQL = (
    "SELECT id, title, priority, due_at, tags FROM tasks_task "
    "WHERE user_id = %s AND NOT completed AND deleted_at IS NULL "
    "ORDER BY due_at ASC NULLS LAST, id LIMIT 50"
)
WRITES = ("insert", "rename", "complete")
KEPT_ERRORS = 5


@dataclass
class Traffic:
    """One client's operations as (kind, started, ended, failed), perf_counter seconds."""

    spans: list[tuple[str, float, float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def before(self, start: float) -> list[float]:
        return [1000 * (e - s) for _, s, e, _ in self.spans if e < start]

    def during(self, start: float, end: float) -> list[tuple[str, float, float, bool]]:
        return [span for span in self.spans if span[1] < end and span[2] > start]

    def longest_gap(self, start: float, end: float) -> tuple[float, float]:
        """The longest time (ms) in [start, end] in which no operation finished, and when it
        began (seconds after ``start``)."""
        ends = sorted(e for _, _, e, _ in self.spans if start <= e <= end)
        points = [start, *ends, end]
        gap, at = max((b - a, a) for a, b in itertools.pairwise(points))
        return 1000 * gap, at - start


class Stamped(io.StringIO):
    """The migration's output, each write with the time it was made."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.stamps.append((time.perf_counter(), text))
        return super().write(text)

    def find(self, pattern: str) -> tuple[float, re.Match] | None:
        for stamp, text in self.stamps:
            if match := re.search(pattern, text):
                return stamp, match
        return None


@dataclass
class Run:
    rows: int
    users: int
    load_seconds: float
    started: float
    ended: float
    phases: dict[str, tuple[float, float]]  # name: (start, end), perf_counter seconds
    swap_ms: float | None
    writes: Traffic
    reads: Traffic
    loads: tuple[float, float]  # 1-minute load average before and after the migration
    without_vector: int
    found_accent_free: int

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Command(BaseCommand):
    help = "Run migration 0006 on --rows tasks while a writer and a reader keep going; time both."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument("--write-rate", type=float, default=50, help="writes per second")
        parser.add_argument("--read-rate", type=float, default=50, help="page reads per second")
        parser.add_argument(
            "--baseline", type=float, default=5, help="seconds of traffic before the migration"
        )
        parser.add_argument("--keep", action="store_true", help="Keep the bench database.")
        parser.add_argument(
            "--no-report", action="store_true", help="Do not write docs/performance.md."
        )

    def handle(
        self,
        *args,
        rows: int,
        users: int,
        write_rate: float,
        read_rate: float,
        baseline: float,
        keep: bool,
        no_report: bool,
        **options,
    ):
        no_query_log()
        database_on_default_server(BENCH_DB, fresh=True)
        connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": BENCH_DB}
        try:
            call_command("migrate", "tasks", BEFORE, database=ALIAS, verbosity=0)
            user_ids, load_seconds = self._load(rows, users)
            self.run = self._measure(user_ids, rows, load_seconds, write_rate, read_rate, baseline)
        finally:
            connections[ALIAS].close()
            if not keep:
                self._drop()
        table = self._table(self.run, write_rate, read_rate)
        self.stdout.write(table)
        if not no_report:
            self.stdout.write(f"written to {write_section('migration', table)}")

    # --- data -------------------------------------------------------------------------------
    def _load(self, rows: int, users: int) -> tuple[list[str], float]:
        """``rows`` tasks as 0005 has them: the generated English vector fills itself, the row
        triggers (the lexicon) are off for the COPY and their work is done in one statement."""
        user_ids = [f"bench-user-{i:03d}" for i in range(users)]
        per_user = -(-rows // users)
        self.stdout.write(f"loading {rows:,} tasks ({users} users) at tasks {BEFORE} ...")
        started = time.perf_counter()
        with psycopg.connect(conninfo(BENCH_DB), autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '256MB'")
            indexes = conn.execute(INDEXES_SQL).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            conn.execute("ALTER TABLE tasks_task DISABLE TRIGGER USER")
            now = timezone.now()
            columns, defaults = copy_layout()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY tasks_task ({columns}) FROM STDIN") as copy,
            ):
                for row in itertools.islice(task_rows(user_ids, per_user, now), rows):
                    copy.write_row((*row, *defaults))
            conn.execute("ALTER TABLE tasks_task ENABLE TRIGGER USER")
            for _, definition in indexes:
                conn.execute(definition)
            conn.execute(
                "INSERT INTO tasks_searchlexeme (user_id, lexeme) SELECT DISTINCT user_id, word "
                "FROM tasks_task, unnest(tsvector_to_array(search_vector)) AS word"
            )
            conn.execute("VACUUM ANALYZE tasks_task")
            conn.execute("VACUUM ANALYZE tasks_searchlexeme")
        elapsed = time.perf_counter() - started
        self.stdout.write(f"loaded, indexed and analyzed in {elapsed:.1f} s")
        return user_ids, elapsed

    def _drop(self) -> None:
        admin = conninfo(connections["default"].settings_dict["NAME"])
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')

    # --- traffic ----------------------------------------------------------------------------
    def _client(
        self,
        traffic: Traffic,
        rate: float,
        operation: Callable[[psycopg.Connection, random.Random, int], str],
        stop: threading.Event,
        seed: int,
    ) -> threading.Thread:
        """A thread doing ``operation`` ``rate`` times a second (never catching up after a
        stall) on a connection of its own, until ``stop``."""

        def run() -> None:
            rng = random.Random(seed)
            interval = 1 / rate
            # Client-side binding, as Django sends queries: no prepared plan to outlive the swap.
            connect = lambda: psycopg.connect(  # noqa: E731
                conninfo(BENCH_DB), autocommit=True, cursor_factory=psycopg.ClientCursor
            )
            conn = connect()
            try:
                due = time.perf_counter()
                for n in itertools.count():
                    if stop.is_set():
                        break
                    kind, failed = "?", False
                    started = time.perf_counter()
                    try:
                        kind = operation(conn, rng, n)
                    except psycopg.Error as error:
                        failed = True
                        traffic.error_count += 1
                        if len(traffic.errors) < KEPT_ERRORS:
                            traffic.errors.append(f"{type(error).__name__}: {error}".strip())
                    ended = time.perf_counter()
                    traffic.spans.append((kind, started, ended, failed))
                    if conn.broken:
                        conn = connect()
                    due = max(due + interval, ended)
                    stop.wait(max(0.0, due - time.perf_counter()))
            finally:
                conn.close()

        return threading.Thread(target=run, name=f"bench-migration-{seed}", daemon=True)

    def _write(self, user_ids: list[str], rows: int):
        def write(conn: psycopg.Connection, rng: random.Random, n: int) -> str:
            kind = WRITES[n % len(WRITES)]
            title = f"{rng.choice(COMMON_WORDS)} {rng.choice(FOREIGN['es'])} {n}"
            if kind == "insert":
                description = " ".join(rng.choices(FOREIGN["de"], k=4))
                conn.execute(INSERT_SQL, [rng.choice(user_ids), title, description])
            elif kind == "rename":
                conn.execute(RENAME_SQL, [title, rng.randint(1, rows)])
            else:
                conn.execute(COMPLETE_SQL, [rng.randint(1, rows)])
            return kind

        return write

    def _read(self, user_ids: list[str]):
        def read(conn: psycopg.Connection, rng: random.Random, n: int) -> str:
            conn.execute(PAGE_SQL, [rng.choice(user_ids)]).fetchall()
            return "page"

        return read

    # --- the run ----------------------------------------------------------------------------
    def _measure(self, user_ids, rows, load_seconds, write_rate, read_rate, baseline) -> Run:
        writes, reads = Traffic(), Traffic()
        stop = threading.Event()
        clients = [
            self._client(writes, write_rate, self._write(user_ids, rows), stop, seed=1),
            self._client(reads, read_rate, self._read(user_ids), stop, seed=2),
        ]
        for client in clients:
            client.start()
        try:
            stop.wait(baseline)
            load_before = os.getloadavg()[0]
            self.stdout.write(f"migrate tasks {TARGET} with a writer and a reader running ...")
            out = Stamped()
            started = time.perf_counter()
            # The migration prints its backfill and swap times (print, not the command's stdout).
            with contextlib.redirect_stdout(out):
                call_command("migrate", "tasks", TARGET, database=ALIAS, verbosity=1, stdout=out)
            ended = time.perf_counter()
            load_after = os.getloadavg()[0]
        finally:
            stop.set()
            for client in clients:
                client.join(60)
        self.stdout.write(out.getvalue().rstrip())
        phases, swap_ms = self._phases(out, started, ended)
        with psycopg.connect(conninfo(BENCH_DB)) as conn:
            without_vector = self._count(
                conn, "SELECT count(*) FROM tasks_task WHERE search_vector IS NULL", []
            )
            found = self._count(
                conn,
                "SELECT count(*) FROM tasks_task WHERE user_id = %s "
                "AND search_vector @@ tasks_search_term('malaga', false)",
                [user_ids[0]],
            )
        return Run(
            rows=rows,
            users=len(user_ids),
            load_seconds=load_seconds,
            started=started,
            ended=ended,
            phases=phases,
            swap_ms=swap_ms,
            writes=writes,
            reads=reads,
            loads=(load_before, load_after),
            without_vector=without_vector,
            found_accent_free=found,
        )

    @staticmethod
    def _count(conn: psycopg.Connection, sql: str, params: list) -> int:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def _phases(self, out: Stamped, started: float, ended: float):
        """The migration's phases, from when each line it prints was written."""
        applying = out.find(rf"Applying tasks\.{TARGET}")
        backfilled = out.find(r"search vectors of ids \d+-\d+ in ([\d.]+) s")
        swapped = out.find(r"swapped in (\d+) ms")
        if not (applying and backfilled and swapped):
            return {}, float(swapped[1][1]) if swapped else None
        backfill_end = backfilled[0]
        backfill_start = backfill_end - float(backfilled[1][1])
        swap_ms = float(swapped[1][1])
        swap_end = swapped[0]
        swap_start = swap_end - swap_ms / 1000
        return {
            "planning": (started, applying[0]),
            "functions and new column": (applying[0], backfill_start),
            f"backfill ({self._batch_rows():,}-row transactions)": (backfill_start, backfill_end),
            "concurrent index": (backfill_end, swap_start),
            "swap (one transaction, table locked)": (swap_start, swap_end),
            "recorded, post-migrate": (swap_end, ended),
        }, swap_ms

    @staticmethod
    def _batch_rows() -> int:
        from importlib import import_module

        return import_module(f"tasks.migrations.{TARGET}").BATCH_ROWS

    # --- report -----------------------------------------------------------------------------
    def _traffic_rows(self, name: str, traffic: Traffic, run: Run) -> list[str]:
        during = traffic.during(run.started, run.ended)
        latencies = [1000 * (e - s) for _, s, e, _ in during]
        p50, p95 = p50_p95(latencies)
        b50, b95 = p50_p95(traffic.before(run.started))
        slowest = max(during, key=lambda span: span[2] - span[1], default=None)
        slowest_at = (
            f"{slowest[0]} at +{slowest[1] - run.started:.1f} s ({self._phase_of(slowest[1], run)})"
            if slowest
            else "-"
        )
        gap, gap_at = traffic.longest_gap(run.started, run.ended)
        failed = sum(1 for span in during if span[3])
        return [
            f"| {name} during the migration | {len(during):,} ({failed} failed) |",
            f"| {name} p50 / p95 / max ms (before it: p50 / p95) | {fmt(p50)} / {fmt(p95)} / "
            f"{fmt(max(latencies, default=float('nan')))} ({fmt(b50)} / {fmt(b95)}) |",
            f"| slowest {name[:-1]} | {slowest_at} |",
            f"| longest time without a finished {name[:-1]} | {fmt(gap)} ms from "
            f"+{gap_at:.1f} s ({self._phase_of(run.started + gap_at, run)}) |",
        ]

    @staticmethod
    def _phase_of(moment: float, run: Run) -> str:
        for name, (start, end) in run.phases.items():
            if start <= moment < end:
                return name.split(" (")[0]
        return "-"

    def _table(self, run: Run, write_rate: float, read_rate: float) -> str:
        lines = [
            "## Search migration 0006 under writes (`python manage.py bench_search_migration`)",
            "",
            f"{run.rows:,} tasks of {run.users} users written at `tasks {BEFORE}` (English-only "
            f"generated vector; loaded in {run.load_seconds:.0f} s), then "
            f"`migrate tasks {TARGET}` while a writer ({write_rate:g}/s: insert, rename, "
            f"complete a random task, in turns) and a reader ({read_rate:g}/s: a page of 50 of "
            "a random user's pending tasks) run, each on its own connection in autocommit. "
            f"Machine: {machine_line()}; load average (1 min) before / after the migration "
            f"{run.loads[0]:.2f} / {run.loads[1]:.2f}.",
            "",
            "| measurement | result |",
            "|---|---|",
            f"| migration, total | {run.seconds:.1f} s ({run.rows / run.seconds:,.0f} rows/s) |",
        ]
        for name, (start, end) in run.phases.items():
            took = end - start
            took_text = f"{took:.1f} s" if took >= 1 else f"{1000 * took:.0f} ms"
            lines.append(f"| {name} | {took_text} from +{start - run.started:.1f} s |")
        if run.swap_ms is not None:
            lines.append(f'| swap as it prints it ("swapped in N ms") | {run.swap_ms:.0f} ms |')
        lines += self._traffic_rows("writes", run.writes, run)
        lines += self._traffic_rows("reads", run.reads, run)
        lines += [
            f"| rows without a search vector afterwards | {run.without_vector:,} |",
            f"| `malaga` (accent-free) finds, one user, afterwards | {run.found_accent_free:,} |",
        ]
        for name, traffic in (("write", run.writes), ("read", run.reads)):
            lines += [f"| {name} error | `{error[:200]}` |" for error in traffic.errors]
        return "\n".join(lines) + "\n"
