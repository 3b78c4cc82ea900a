"""A writer process of ``bench_events``: imports nothing of Django until it has set it up, so the
``spawn`` start method can load it in a fresh interpreter."""

from __future__ import annotations

import json
import time


def _set_up() -> None:
    import django

    django.setup()
    from bench.benchmarks import no_query_log
    from core.memory import freeze_startup_heap
    from tasks import services  # noqa: F401  (imported before the heap is frozen)

    no_query_log()
    freeze_startup_heap()  # as the servers whose writes this stands for


class _Pace:
    """Holds a writer to ``rate`` events/s (``None``: as fast as it can). A writer that falls
    behind catches up without pausing: the load is offered on a schedule, not in reply to the
    pipeline."""

    def __init__(self, rate: float | None):
        self.interval = 1 / rate if rate else 0.0
        self.due: float | None = None

    def before(self, events: int) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.due is None:
            self.due = now
        if self.due > now:
            time.sleep(self.due - now)
        self.due += events * self.interval


def write_changes(
    users: list[str], task_ids: list[int], changes: int, per_transaction: int, rate, start
):
    """``changes`` title updates through ``tasks.services``, round robin over the given tasks,
    at ``rate`` changes/s."""
    _set_up()
    from django.db import connection, transaction

    from tasks import services

    pace = _Pace(rate)
    start.wait()
    index = 0
    while index < changes:
        pace.before(min(per_transaction, changes - index))
        with transaction.atomic():
            for _ in range(min(per_transaction, changes - index)):
                slot = index % len(users)
                services.task_update(
                    user_id=users[slot],
                    task_id=task_ids[slot],
                    changes={"title": f"change {index}"},
                )
                index += 1
    connection.close()


def record_events(
    users: list[str],
    snapshots: list[dict],
    events: int,
    per_transaction: int,
    rate,
    start,
    commit_log: str | None = None,
):
    """``events`` ``task.updated`` events recorded straight into the outbox (no task write), at
    ``rate`` events/s: loads the pipeline harder than the task services can. With
    ``commit_log``, writes there (JSON) when each transaction committed and its event ids."""
    _set_up()
    from django.db import connection, transaction

    from events.services import NewEvent, event_records

    pace = _Pace(rate)
    commits: list = []
    start.wait()
    index = 0
    while index < events:
        pace.before(min(per_transaction, events - index))
        batch = []
        for _ in range(min(per_transaction, events - index)):
            slot = index % len(users)
            snapshot = snapshots[slot]
            payload = {
                "task_id": snapshot["id"],
                "task_data": snapshot,
                "changed_fields": ["title"],
                "previous": {"title": snapshot["title"]},
            }
            batch.append(NewEvent("task.updated", users[slot], payload))
            index += 1
        with transaction.atomic():
            recorded = event_records(batch)  # one statement per transaction, as a batch writer
        commits.append((time.time(), [str(envelope.event_id) for envelope in recorded]))
    connection.close()
    if commit_log:
        with open(commit_log, "w") as file:
            json.dump(commits, file)
