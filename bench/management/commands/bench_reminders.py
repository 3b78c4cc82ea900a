"""``python manage.py bench_reminders``: how late reminders fire in the embedded mode.

Creates ``--count`` tasks (spread over ``--users`` users) whose reminders all come due within one
``--window`` (seconds; 0 puts them all on the same instant), runs the polling scheduler(s) as the
embedded server does, with the server's relay and consumers beside them, and prints the
lateness of each firing (fire time to the firing transaction) as percentiles.

Runs in a scratch database that it creates and drops (``--in-place`` uses the configured one).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from bench.benchmarks import (
    machine_line,
    mean,
    no_query_log,
    percentile,
    scratch_database,
    write_section,
)
from reminders.models import Reminder, ReminderState
from reminders.scheduler import ReminderScheduler
from tasks import services


@contextmanager
def event_workers(enabled: bool):
    """The relay and in-process consumers, as the embedded server runs them."""
    if not enabled:
        yield
        return
    from events.runners import WorkerGroup

    group = WorkerGroup().start()
    try:
        yield
    finally:
        group.stop()


class Command(BaseCommand):
    help = "Reminder lateness with many reminders due in the same minute (embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1000)
        parser.add_argument("--users", type=int, default=100)
        parser.add_argument(
            "--windows",
            default="60,0",
            help="comma-separated scenarios: the seconds over which the reminders come due "
            "(60: spread over the minute; 0: all on the minute mark)",
        )
        parser.add_argument("--schedulers", type=int, default=1)
        parser.add_argument(
            "--lead", type=float, default=10.0, help="seconds between setup and the first due time"
        )
        parser.add_argument("--no-workers", action="store_true", help="without relay and consumers")
        parser.add_argument("--in-place", action="store_true", help="use the configured database")
        parser.add_argument(
            "--no-report", action="store_true", help="do not write docs/performance.md"
        )

    def handle(
        self,
        *args,
        count,
        users,
        windows,
        schedulers,
        lead,
        no_workers,
        in_place,
        no_report,
        **options,
    ):
        self.stdout.write(f"bench_reminders on {machine_line()}")
        no_query_log()
        with scratch_database(not in_place, self.stdout), event_workers(not no_workers):
            running = []
            for n in range(schedulers):
                scheduler = ReminderScheduler(name=f"bench-{n}")
                thread = threading.Thread(target=scheduler.run, daemon=True)
                thread.start()
                running.append((scheduler, thread))
            rows = []
            try:
                for n, window in enumerate(float(w) for w in windows.split(",")):
                    rows.append(
                        self._scenario(n, count, users, window, lead, schedulers, not no_workers)
                    )
            finally:
                for scheduler, _ in running:
                    scheduler.stop()
                for _, thread in running:
                    thread.join(10)
        if not no_report:
            self._report(rows, count, users, schedulers, not no_workers)

    def _report(self, rows, count, users, schedulers, workers) -> None:
        runner = f"{schedulers} polling scheduler{'' if schedulers == 1 else 's'}"
        if workers:
            runner += ", with the relay and the consumers running beside it"
        lines = [
            "## Reminders: lateness (`python manage.py bench_reminders`)",
            "",
            f"{count:,} reminders for {users} users, embedded mode: {runner}. Lateness: a "
            f"reminder's time to its firing transaction. Machine: {machine_line()}.",
            "Plan: 30 s. Goal: p95 <= 1,000 ms.",
            "",
            "| reminders due | p50 ms | p95 ms | p99 ms | max ms | fired | goal |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for shape, lateness_ms, fired in rows:
            p95 = percentile(lateness_ms, 95)
            lines.append(
                f"| {shape} | {percentile(lateness_ms, 50):.1f} | {p95:.1f} | "
                f"{percentile(lateness_ms, 99):.1f} | {max(lateness_ms, default=0):.1f} | "
                f"{fired:,} / {count:,} | {'met' if p95 <= 1000 and fired == count else 'missed'} |"
            )
        self.stdout.write(f"wrote {write_section('reminders', chr(10).join(lines))}")

    def _create(self, prefix: str, count: int, users: int, first, window: float) -> list:
        created = []
        step = window / max(count - 1, 1) if window else 0.0
        for i in range(count):
            remind_at = first + timedelta(seconds=i * step)
            task = services.task_create(
                user_id=f"{prefix}-user-{i % users}",
                title=f"Reminder {i}",
                due_date=remind_at + timedelta(hours=1),
                reminder_time="1h",
            )
            created.append(task)
        return created

    def _scenario(self, n, count, users, window, lead, schedulers, workers):
        prefix = f"bench-{n}"
        # Time a sample first, so that the first reminder comes due ``lead`` s after setup.
        started = time.monotonic()
        sample = max(1, min(50, count // 20))
        probe = self._create(
            f"{prefix}-probe", sample, users, timezone.now() + timedelta(days=1), 0
        )
        per_task = (time.monotonic() - started) / sample
        for task in probe:
            services.task_delete(user_id=task.user_id, task_id=task.pk)
        first = timezone.now() + timedelta(seconds=per_task * count * 1.5 + lead)
        created_at = time.monotonic()
        task_ids = [task.pk for task in self._create(prefix, count, users, first, window)]
        setup = time.monotonic() - created_at
        ahead = (first - timezone.now()).total_seconds()
        self.stdout.write(
            f"{count} reminders for {users} users created in {setup:.1f}s; first due "
            f"{ahead:.1f}s later, the last {window:.0f}s after it; {schedulers} scheduler(s)"
            + (", relay and consumers running" if workers else "")
        )
        if ahead <= 0:
            self.stderr.write("setup overran the first due time; use a larger --lead")
        deadline = time.monotonic() + max(ahead, 0) + window + 120
        pending = Reminder.objects.filter(task_id__in=task_ids, state=ReminderState.SCHEDULED)
        while time.monotonic() < deadline and pending.exists():
            time.sleep(0.5)

        rows = list(
            Reminder.objects.filter(task_id__in=task_ids, state=ReminderState.FIRED).values_list(
                "fire_at", "fired_at"
            )
        )
        lateness_ms = [(fired - due).total_seconds() * 1000 for due, fired in rows]
        if len(rows) != count:
            self.stderr.write(f"only {len(rows)} of {count} reminders fired")
        shape = f"spread over {window:.0f} s" if window else "all at one instant"
        self.stdout.write(
            f"reminder lateness, {shape} (fire time -> firing transaction), ms: "
            f"p50 {percentile(lateness_ms, 50):.1f}  p95 {percentile(lateness_ms, 95):.1f}  "
            f"p99 {percentile(lateness_ms, 99):.1f}  max {max(lateness_ms, default=0):.1f}  "
            f"mean {mean(lateness_ms):.1f}  (n={len(rows)}, goal p95 <= 1000)"
        )
        return shape, lateness_ms, len(rows)
