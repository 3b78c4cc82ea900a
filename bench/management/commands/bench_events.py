"""``python manage.py bench_events``: task changes through service -> outbox -> relay -> consumer.

Writers (separate processes, so they do not share this process's interpreter lock with the
pipeline) change tasks through ``tasks.services`` or record events straight into the outbox; the
relay and a consumer run here as they run in the embedded server (threads), or through the
in-process Dapr sidecar. The consumer does what the audit consumer does (one history row per
event) and notes when it committed each event. Printed: events/s sustained (first commit to last
event consumed) and commit-to-consumer latency p50/p95: from the commit of each writer
transaction when the writers record into the outbox (they log when each committed), from the
envelope's timestamp, taken in the service just before its commit, otherwise.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

from bench.bench_writer import record_events, write_changes
from bench.benchmarks import no_query_log, percentile
from core.memory import freeze_startup_heap
from events import log, topics
from events.brokers.embedded import EmbeddedBroker
from events.consumers import Consumer
from events.models import (
    ConsumerCursor,
    OutboxEvent,
    OutboxPending,
    ProcessedEvent,
    UserEventSequence,
)
from events.relay import relay_once
from events.runners import WorkerGroup
from tasks.models import TaskHistory
from tasks.representation import task_to_dict
from tasks.services import task_history_record

PLAN_EVENTS_PER_SECOND = 1000
GOAL_EVENTS_PER_SECOND = 5000
GOAL_P95_MS = 50


class _Recorder:
    def __init__(self, expected: int, *, prefix: str):
        self.expected = expected
        self.prefix = prefix
        self.latencies: list[float] = []  # from each envelope's timestamp
        self.consumed_at: dict[str, float] = {}  # event id -> when the consumer committed it
        self.done = threading.Event()
        self.last_at = 0.0
        self._lock = threading.Lock()

    def consumer(self, name: str) -> Consumer:
        def handle_batch(envelopes):
            mine = [e for e in envelopes if e.user_id.startswith(self.prefix)]
            task_history_record(envelopes=mine)
            stamps = [(str(e.event_id), e.timestamp) for e in mine]
            transaction.on_commit(lambda: self._committed(stamps))

        return Consumer(
            name=name,
            topic=topics.TASK_EVENTS,
            handle=lambda envelope: handle_batch([envelope]),
            handle_batch=handle_batch,
            event_types=frozenset({"task.updated"}),
            writes_for_users=False,  # as the audit consumer: history rows carry their sequence
        )

    def _committed(self, stamps) -> None:
        now = datetime.now(UTC)
        at = now.timestamp()
        with self._lock:
            self.latencies.extend((now - stamp).total_seconds() * 1000 for _, stamp in stamps)
            self.consumed_at.update((event_id, at) for event_id, _ in stamps)
            self.last_at = time.monotonic()
            if len(self.latencies) >= self.expected:
                self.done.set()


class Command(BaseCommand):
    help = "Benchmark the event pipeline: events/s and commit-to-consumer latency."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=10_000)
        parser.add_argument("--users", type=int, default=200)
        parser.add_argument("--writers", type=int, default=2)
        parser.add_argument(
            "--per-transaction",
            type=int,
            default=1,
            help="Task changes per transaction (1: each change commits on its own).",
        )
        parser.add_argument("--mode", choices=["embedded", "dapr", "both"], default="both")
        parser.add_argument(
            "--source",
            choices=["services", "outbox"],
            default="services",
            help="services: task_update per change; outbox: events recorded without a task "
            "write, to load the pipeline beyond what the services can produce here.",
        )
        parser.add_argument(
            "--partitions",
            type=int,
            default=16,
            help="Partitions of the in-process Dapr sidecar's topics (messages in flight per "
            "consumer, as on a Kafka topic with that many partitions).",
        )
        parser.add_argument(
            "--rate",
            type=int,
            default=None,
            help="Events/s the writers offer in the live run, together (default: as fast as "
            "they can, which measures the most the machine sustains; a rate measures the "
            "latency at that load).",
        )
        parser.add_argument("--write", action="store_true", help="Update docs/performance.md.")

    def handle(
        self,
        *args,
        events,
        users,
        writers,
        per_transaction,
        mode,
        source,
        partitions,
        rate,
        write,
        **options,
    ):
        self.partitions = partitions
        self.rate = rate
        no_query_log()
        freeze_startup_heap()  # as the server and worker processes do
        if events < writers or users < writers:
            raise CommandError("--events and --users must be at least --writers")
        modes = ["embedded", "dapr"] if mode == "both" else [mode]
        results = []
        for name in modes:
            for backlog in (False, True):
                self.stdout.write(
                    f"{name}, {'backlog' if backlog else 'live'}: {events} changes, "
                    f"{users} users, {writers} writers"
                    f"{f', {self.rate}/s offered' if self.rate and not backlog else ''} ..."
                )
                result = self._run(
                    name, events, users, writers, per_transaction, backlog=backlog, source=source
                )
                results.append(result)
                self.stdout.write(self._line(result))
        if write:
            self._write(results, events, users, writers, per_transaction, source)

    def _run(
        self, mode, events, users, writers, per_transaction, *, backlog: bool, source: str
    ) -> dict:
        """``backlog``: write every change first, then time relay + consumer draining them
        (the pipeline's own capacity). Otherwise writers and pipeline run together (live)."""
        from tasks import services

        run = uuid.uuid4().hex[:8]
        user_ids = [f"bench-events-{run}-{index}" for index in range(users)]
        tasks = [services.task_create(user_id=user, title="bench") for user in user_ids]
        task_ids = [task.pk for task in tasks]
        snapshots = [task_to_dict(task) for task in tasks]
        # The relay's queue is emptied of the set-up's events before the clock starts.
        broker = EmbeddedBroker()
        while relay_once(broker).published:
            pass
        recorder = _Recorder(events, prefix=f"bench-events-{run}-")
        consumer = recorder.consumer(f"bench-{mode}-{run}")
        sidecar = None
        saved_env = {}
        if mode == "dapr":
            from bench.sidecar import InProcessDaprSidecar

            sidecar = InProcessDaprSidecar(partitions=self.partitions).start()
            # The writers serve no /job/<name> callbacks, so the settings ask no app token of them.
            for key, value in {**sidecar.environ(), "REMINDER_JOBS_OWNER": "0"}.items():
                saved_env[key] = os.environ.get(key)
                os.environ[key] = value
        else:
            # A new consumer starts after what the log holds now, not at its beginning.
            with connections["default"].cursor() as cursor:
                log.cursor_create(cursor, consumer=consumer.name, at_now=True)
        group = WorkerGroup(broker=mode, consumers=[consumer])
        try:
            if not backlog:
                self._start(group, sidecar, consumer)
            connections.close_all()
            started, written, commits = self._write_changes(
                user_ids,
                snapshots if source == "outbox" else task_ids,
                events,
                writers,
                per_transaction,
                rate=None if backlog else self.rate,
                target=record_events if source == "outbox" else write_changes,
            )
            if backlog:
                started = time.monotonic()
                self._start(group, sidecar, consumer)
            if not recorder.done.wait(timeout=max(120.0, events / 100)):
                raise CommandError(
                    f"only {len(recorder.latencies)} of {events} events were consumed"
                )
            finished = recorder.last_at
        finally:
            group.stop()
            if sidecar is not None:
                sidecar.stop()
                for key, value in saved_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        self._clean_up(user_ids, consumer.name)
        # Commit to consumer: from the writer's commit of each event (known when the writers
        # record straight into the outbox), else from the envelope's timestamp.
        latencies = [
            (recorder.consumed_at[event_id] - committed_at) * 1000
            for committed_at, event_ids in commits
            for event_id in event_ids
            if event_id in recorder.consumed_at
        ] or recorder.latencies
        return {
            "mode": mode,
            "phase": "backlog" if backlog else "live",
            "source": source,
            "per_transaction": per_transaction,
            "events": events,
            "write_rate": events / (written - started) if not backlog else None,
            "rate": events / (finished - started),
            "p50": None if backlog else percentile(latencies, 50),
            "p95": None if backlog else percentile(latencies, 95),
            "max": None if backlog else max(latencies),
            "p95_from_timestamp": None if backlog else percentile(recorder.latencies, 95),
        }

    @staticmethod
    def _clean_up(user_ids: list[str], consumer: str) -> None:
        """Delete the events the run wrote and what consumers made of them, so that runs do
        not pile up in the database and the next run does not wait for their vacuum. (Its 200
        tasks stay: tasks change only through the task services.)"""
        TaskHistory.objects.filter(user_id__in=user_ids).delete()
        ProcessedEvent.objects.filter(consumer=consumer).delete()
        ConsumerCursor.objects.filter(consumer=consumer).delete()
        # Rows the relay has not yet taken off its queue leave it with them.
        events = OutboxEvent.objects.filter(user_id__in=user_ids)
        OutboxPending.objects.filter(id__in=events.values("id")).delete()
        events.delete()
        UserEventSequence.objects.filter(user_id__in=user_ids).delete()

    @staticmethod
    def _start(group, sidecar, consumer) -> None:
        group.start()
        if sidecar is not None:
            sidecar.wait_for(lambda: sidecar.subscribers(consumer.name, topics.TASK_EVENTS) == 1)

    @staticmethod
    def _write_changes(
        user_ids, targets, events, writers, per_transaction, *, rate, target
    ) -> tuple[float, float, list]:
        """Run the writer processes; returns when they started and finished, and (writers
        recording into the outbox) when each transaction committed with its event ids."""
        context = multiprocessing.get_context("spawn")
        start = context.Event()
        share = events // writers
        processes = []
        with tempfile.TemporaryDirectory() as logs:
            commit_logs = []
            for index in range(writers):
                mine = slice(index, None, writers)
                count = share if index < writers - 1 else events - share * (writers - 1)
                args = [
                    user_ids[mine],
                    targets[mine],
                    count,
                    per_transaction,
                    rate / writers if rate else None,
                    start,
                ]
                if target is record_events:
                    commit_logs.append(os.path.join(logs, f"commits-{index}.json"))
                    args.append(commit_logs[-1])
                process = context.Process(target=target, args=args, daemon=True)
                process.start()
                processes.append(process)
            time.sleep(2.0)  # let the writers boot Django
            started = time.monotonic()
            start.set()
            for process in processes:
                process.join()
                if process.exitcode:
                    raise CommandError(f"a writer failed (exit code {process.exitcode})")
            finished = time.monotonic()
            commits = []
            for commit_log in commit_logs:
                with open(commit_log) as file:
                    commits.extend(json.load(file))
        return started, finished, commits

    @staticmethod
    def _line(result: dict) -> str:
        if result["phase"] == "backlog":
            return f"  {result['mode']:<9} drained {result['rate']:8.0f} events/s"
        return (
            f"  {result['mode']:<9} {result['rate']:8.0f} events/s consumed "
            f"({result['write_rate']:.0f}/s written)   commit->consumer "
            f"p50 {result['p50']:.1f} ms  p95 {result['p95']:.1f} ms  max {result['max']:.0f} ms"
            f"   (from the envelope's timestamp: p95 {result['p95_from_timestamp']:.1f} ms)"
        )

    def _write(self, results, events, users, writers, per_transaction, source) -> None:
        """Replace this configuration's block in docs/performance.md (other blocks stay)."""
        path = Path(settings.BASE_DIR) / "docs" / "performance.md"
        paced = f" at {self.rate}" if self.rate else ""
        begin = f"<!-- bench_events {source} x{per_transaction}{paced}:begin -->"
        end = f"<!-- bench_events {source} x{per_transaction}{paced}:end -->"

        def cell(value, spec):
            return "-" if value is None else format(value, spec)

        rows = "\n".join(
            f"| {r['mode']} | {r['phase']} | {cell(r['rate'], ',.0f')} | "
            f"{cell(r['write_rate'], ',.0f')} | {cell(r['p50'], '.1f')} | "
            f"{cell(r['p95'], '.1f')} | {cell(r['max'], '.0f')} | "
            f"{cell(r['p95_from_timestamp'], '.1f')} |"
            for r in results
        )
        what = (
            f"`tasks.services.task_update` calls ({per_transaction} per transaction)"
            if source == "services"
            else f"`task.updated` events recorded straight into the outbox, no task write "
            f"({per_transaction} per transaction)"
        )
        try:
            load = "load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
        except OSError:
            load = "load unknown"
        command = (
            f"python manage.py bench_events --source {source} --events {events} "
            f"--users {users} --writers {writers} --per-transaction {per_transaction} "
            f"--partitions {self.partitions}" + (f" --rate {self.rate}" if self.rate else "")
        )
        latency_from = (
            "from the writer's commit of each event"
            if source == "outbox"
            else "from the envelope's timestamp (taken in the service, just before its commit)"
        )
        offered = (
            f"In the live run the writers offer {self.rate:,} events/s between them, on a "
            f"schedule; the rest of the machine's capacity is headroom."
            if self.rate
            else "In the live run the writers go as fast as they can: the figures are what the "
            "machine sustains with writers and pipeline sharing its cores."
        )
        block = f"""{begin}
### Events from {source}, {per_transaction} per transaction{f", {self.rate:,} offered per second" if self.rate else ""}

```
{command}
```

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, {load} at the end.
{writers} writer process{"es" if writers > 1 else ""} make{"s" if writers == 1 else ""} {what}; the relay and
a consumer writing one history row per event run as threads, as in the embedded server (Dapr:
through the in-process sidecar, {self.partitions} partitions). *live*: writers and pipeline together, latency
{latency_from} to the consumer's commit; *backlog*: everything written first, then drained: the pipeline's own capacity.
{offered}
Plan: {PLAN_EVENTS_PER_SECOND:,} events/s. Goal: >= {GOAL_EVENTS_PER_SECOND:,} events/s sustained,
p95 <= {GOAL_P95_MS} ms commit-to-consumer (embedded).

| broker | run | consumed events/s | written events/s | p50 ms | p95 ms | max ms | p95 from timestamp ms |
|---|---|---|---|---|---|---|---|
{rows}
{end}"""
        text = path.read_text() if path.exists() else "# Performance\n"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            heading = "## Events: service -> outbox -> relay -> consumer"
            if heading not in text:
                text = text.rstrip("\n") + f"\n\n{heading}\n"
            head, tail = text.split(heading, 1)
            text = head + heading + "\n\n" + block + "\n" + tail.lstrip("\n")
        path.write_text(text if text.endswith("\n") else text + "\n")
        self.stdout.write(f"wrote {path}")
