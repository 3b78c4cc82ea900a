"""``python manage.py bench_recurrence``: completion of a recurring task to its next instance.

Runs the embedded server's relay and consumers in this process, completes recurring tasks one
after another through the task services, and measures from the completing commit to the commit
of the next instance that the ``recurrence`` consumer creates. Prints percentiles.

Runs in a scratch database that it creates and drops (``--in-place`` uses the configured one).
"""

from __future__ import annotations

import threading
import time

from django.core.management.base import BaseCommand
from django.db import transaction

from bench.benchmarks import (
    machine_line,
    mean,
    no_query_log,
    percentile,
    scratch_database,
    write_section,
)
from tasks import services
from tasks.models import Task
from tasks.signals import task_changed


class _NextInstanceClock:
    """Notes when each new instance of a series commits (``on_commit`` in the consumer)."""

    def __init__(self):
        self.committed: dict[str, float] = {}
        self.arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def expect(self, series_id: str) -> threading.Event:
        with self._lock:
            self.committed.pop(series_id, None)
            event = self.arrived[series_id] = threading.Event()
        return event

    def __call__(self, sender, change, **kwargs):
        if change.action != "created" or not change.task.series_index:
            return
        series_id = str(change.task.series_id)

        def note():
            with self._lock:
                self.committed[series_id] = time.perf_counter()
                event = self.arrived.get(series_id)
            if event is not None:
                event.set()

        transaction.on_commit(note)


class Command(BaseCommand):
    help = "Completion-to-next-instance latency through the recurrence consumer (embedded)."

    def add_arguments(self, parser):
        parser.add_argument("--completions", type=int, default=300)
        parser.add_argument("--series", type=int, default=50, help="series (one per user)")
        parser.add_argument("--warmup", type=int, default=10)
        parser.add_argument("--only-recurrence", action="store_true", help="run no other consumer")
        parser.add_argument("--in-place", action="store_true", help="use the configured database")
        parser.add_argument(
            "--no-report", action="store_true", help="do not write docs/performance.md"
        )

    def handle(
        self, *args, completions, series, warmup, only_recurrence, in_place, no_report, **options
    ):
        self.stdout.write(f"bench_recurrence on {machine_line()}")
        no_query_log()
        with scratch_database(not in_place, self.stdout):
            latencies_ms, consumers = self._run(completions, series, warmup, only_recurrence)
        if not no_report:
            p95 = percentile(latencies_ms, 95)
            report = "\n".join(
                [
                    "## Recurrence: completion to next instance (`python manage.py bench_recurrence`)",
                    "",
                    f"{completions} completions over {series} recurring series, one at a time, "
                    f"embedded mode; consumers running: {', '.join(consumers)}. From the "
                    "completion's commit to the commit of the next instance the recurrence "
                    f"consumer creates. Machine: {machine_line()}. Plan: 5 s. Goal: p95 <= 250 ms.",
                    "",
                    "| p50 ms | p95 ms | p99 ms | max ms | measured | goal |",
                    "|---:|---:|---:|---:|---:|---|",
                    f"| {percentile(latencies_ms, 50):.1f} | {p95:.1f} | "
                    f"{percentile(latencies_ms, 99):.1f} | {max(latencies_ms, default=0):.1f} | "
                    f"{len(latencies_ms)} | {'met' if p95 <= 250 else 'missed'} |",
                ]
            )
            self.stdout.write(f"wrote {write_section('recurrence', report)}")

    def _run(self, completions, series_count, warmup, only_recurrence):
        from events.consumers import get_consumer
        from events.runners import WorkerGroup, in_process_consumers

        current: list[Task] = [
            services.task_create(
                user_id=f"bench-series-user-{n}",
                title=f"Series {n}",
                due_date=f"2031-01-{1 + n % 28:02d}T09:00:00",
                recurrence_pattern="daily",
                timezone_name="Europe/London",
                reminder_time="1h",
            )
            for n in range(series_count)
        ]
        clock = _NextInstanceClock()
        task_changed.connect(clock, dispatch_uid="bench_recurrence.clock")
        consumers = [get_consumer("recurrence")] if only_recurrence else in_process_consumers()
        group = WorkerGroup(consumers=consumers).start()
        latencies_ms: list[float] = []
        lost = 0
        try:
            time.sleep(0.5)  # let the workers settle
            for i in range(warmup + completions):
                slot = i % series_count
                task = current[slot]
                arrived = clock.expect(str(task.series_id))
                services.task_complete(user_id=task.user_id, task_id=task.pk)
                committed = time.perf_counter()  # task_complete returns after its commit
                if not arrived.wait(10):
                    lost += 1
                    continue
                if i >= warmup:
                    latencies_ms.append((clock.committed[str(task.series_id)] - committed) * 1000)
                current[slot] = (
                    Task.objects.filter(series_id=task.series_id, completed=False)
                    .order_by("due_at")
                    .first()
                )
        finally:
            group.stop()
            task_changed.disconnect(dispatch_uid="bench_recurrence.clock")
        self.stdout.write(
            f"{completions} completions over {series_count} series, one at a time; consumers: "
            + ", ".join(consumer.name for consumer in consumers)
        )
        if lost:
            self.stderr.write(f"{lost} completions got no next instance within 10s")
        self.stdout.write(
            "completion -> next instance (commit to commit), ms: "
            f"p50 {percentile(latencies_ms, 50):.1f}  p95 {percentile(latencies_ms, 95):.1f}  "
            f"p99 {percentile(latencies_ms, 99):.1f}  max {max(latencies_ms, default=0):.1f}  "
            f"mean {mean(latencies_ms):.1f}  "
            f"(n={len(latencies_ms)}, goal p95 <= 250)"
        )
        return latencies_ms, [consumer.name for consumer in consumers]
