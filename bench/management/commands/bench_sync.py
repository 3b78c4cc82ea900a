"""``make bench-sync``: writes that can be retried, bulk, and the change feed, through HTTP.

A uvicorn process serves the project's ASGI app on a bench database of its own; one client on a
kept connection times, one request at a time:

- a create with an ``Idempotency-Key`` against the same create without one, the two taking turns
  (goal: p95 within 15 % of the plain one);
- 100 creates in one ``POST /api/tasks/bulk/`` against 100 single ``POST /api/tasks/`` (goal:
  at least 5x the throughput);
- ``GET /api/changes/?since=0&limit=1000`` over 1,000 events (goal: p95 <= 50 ms).
"""

from __future__ import annotations

import logging
import os
import time
import uuid

import httpx
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from bench.benchmarks import (
    bench_server,
    database_on_default_server,
    database_url,
    fmt,
    machine_line,
    p50_p95,
    server_env,
    write_section,
)
from core.auth import issue_token

BENCH_DB = "todo_bench_sync"
ALIAS = "bench_sync"
WARMUP = 20
IDEMPOTENT_GOAL = 1.15
BULK_GOAL = 5.0
FEED_GOAL_MS = 50.0
FEED_EVENTS = 1000


def _task(i: int) -> dict:
    return {"title": f"Sync bench task {i}", "priority": "high", "tags": ["bench", "sync"]}


class Command(BaseCommand):
    help = "Time idempotent writes, bulk creates and the change feed through HTTP."

    def add_arguments(self, parser):
        parser.add_argument("--samples", type=int, default=300)
        parser.add_argument("--rounds", type=int, default=5, help="bulk vs single rounds")
        parser.add_argument("--feed-samples", type=int, default=100)
        parser.add_argument("--no-report", action="store_true")

    def handle(self, *args, samples, rounds, feed_samples, no_report, **options):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
        database_on_default_server(BENCH_DB, fresh=True)
        connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": BENCH_DB}
        call_command("migrate", database=ALIAS, verbosity=0, interactive=False)
        env = server_env(database_url(BENCH_DB), RUN_WORKERS_IN_PROCESS="0")
        with bench_server(env) as (port, _):
            base = f"http://127.0.0.1:{port}"
            plain, keyed = self._idempotent(base, samples)
            single, bulk = self._bulk(base, rounds)
            feed = self._feed(base, feed_samples)
        self.load = os.getloadavg()[1]
        table = self._table(samples, rounds, feed_samples, plain, keyed, single, bulk, feed)
        self.stdout.write(table)
        if not no_report:
            self.stdout.write(f"written to {write_section('sync', table)}")

    def _client(self, base: str, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {issue_token(user)}"}, timeout=60
        )

    def _idempotent(self, base: str, samples: int) -> tuple[list[float], list[float]]:
        plain: list[float] = []
        keyed: list[float] = []
        with self._client(base, "bench-sync-writer") as http:
            for i in range(WARMUP + samples):
                for times, headers in ((plain, {}), (keyed, {"Idempotency-Key": uuid.uuid4().hex})):
                    started = time.perf_counter()
                    response = http.post("/api/tasks/", json=_task(i), headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 201, response.text
                    if i >= WARMUP:
                        times.append(elapsed)
        return plain, keyed

    def _bulk(self, base: str, rounds: int) -> tuple[list[float], list[float]]:
        """Seconds for 100 single creates and for one bulk of 100, per round."""
        single: list[float] = []
        bulk: list[float] = []
        with self._client(base, "bench-sync-bulk") as http:
            for _ in range(rounds):
                started = time.perf_counter()
                for i in range(100):
                    assert http.post("/api/tasks/", json=_task(i)).status_code == 201
                single.append(time.perf_counter() - started)
                operations = [{"op": "create", "data": _task(i)} for i in range(100)]
                started = time.perf_counter()
                response = http.post("/api/tasks/bulk/", json={"operations": operations})
                bulk.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                assert {r["status"] for r in response.json()["results"]} == {201}
        return single, bulk

    def _feed(self, base: str, samples: int) -> list[float]:
        times: list[float] = []
        with self._client(base, "bench-sync-feed") as http:
            for start in range(0, FEED_EVENTS, 100):
                operations = [{"op": "create", "data": _task(start + i)} for i in range(100)]
                assert http.post("/api/tasks/bulk/", json={"operations": operations}).is_success
            for i in range(WARMUP + samples):
                started = time.perf_counter()
                response = http.get("/api/changes/", params={"since": 0, "limit": FEED_EVENTS})
                elapsed = (time.perf_counter() - started) * 1000
                assert len(response.json()["changes"]) == FEED_EVENTS, response.text
                if i >= WARMUP:
                    times.append(elapsed)
        return times

    def _table(self, samples, rounds, feed_samples, plain, keyed, single, bulk, feed) -> str:
        plain_p50, plain_p95 = p50_p95(plain)
        keyed_p50, keyed_p95 = p50_p95(keyed)
        ratio = keyed_p95 / plain_p95
        single_rate = 100 * len(single) / sum(single)
        bulk_rate = 100 * len(bulk) / sum(bulk)
        speedup = bulk_rate / single_rate
        feed_p50, feed_p95 = p50_p95(feed)

        def verdict(ok: bool) -> str:
            return "met" if ok else "**missed**"

        lines = [
            "## Sync: idempotent writes, bulk, change feed (`python manage.py bench_sync`)",
            "",
            "One uvicorn process (relay and consumers not running: the figures are the request "
            "path) on a fresh bench database; one client on a kept HTTP connection over "
            "loopback, one request at a time, end to end (HTTP, JWT, DRF, services, outbox "
            f"event, PostgreSQL). Machine: {machine_line()}; load average over the run "
            f"{self.load:.1f}.",
            "",
            "| measurement | result | goal | |",
            "|---|---|---|---|",
            f"| `POST /api/tasks/`, no key ({samples} creates, p50 / p95 ms) | "
            f"{fmt(plain_p50)} / {fmt(plain_p95)} | | |",
            f"| same with `Idempotency-Key` (taking turns with the above, p50 / p95 ms) | "
            f"{fmt(keyed_p50)} / {fmt(keyed_p95)} | | |",
            f"| keyed p95 / plain p95 | {ratio:.2f} | <= {IDEMPOTENT_GOAL:.2f} | "
            f"{verdict(ratio <= IDEMPOTENT_GOAL)} |",
            f"| 100 single creates ({rounds} rounds, tasks/s) | {single_rate:,.0f} | | |",
            f"| one bulk of 100 creates ({rounds} rounds, tasks/s) | {bulk_rate:,.0f} | | |",
            f"| bulk / single throughput | {speedup:.1f}x | >= {BULK_GOAL:.0f}x | "
            f"{verdict(speedup >= BULK_GOAL)} |",
            f"| `GET /api/changes/?since=0&limit=1000`, 1,000 events ({feed_samples} reads, "
            f"p50 / p95 ms) | {fmt(feed_p50)} / {fmt(feed_p95)} | p95 <= {FEED_GOAL_MS:.0f} | "
            f"{verdict(feed_p95 <= FEED_GOAL_MS)} |",
        ]
        return "\n".join(lines) + "\n"
