"""A writer process of ``bench_events``: imports nothing of Django until it has set it up, so the
``spawn`` start method can load it in a fresh interpreter."""

from __future__ import annotations


def _set_up() -> None:
    import django

    django.setup()
    from tasks import services  # noqa: F401  (imported before the heap is frozen)
    from todo_project.benchmarks import no_query_log
    from todo_project.memory import freeze_startup_heap

    no_query_log()
    freeze_startup_heap()  # as the servers whose writes this stands for


def write_changes(users: list[str], task_ids: list[int], changes: int, per_transaction: int, start):
    """``changes`` title updates through ``tasks.services``, round robin over the given tasks."""
    _set_up()
    from django.db import connection, transaction

    from tasks import services

    start.wait()
    index = 0
    while index < changes:
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
    users: list[str], snapshots: list[dict], events: int, per_transaction: int, start
):
    """``events`` ``task.updated`` events recorded straight into the outbox (no task write):
    loads the pipeline harder than the task services can."""
    _set_up()
    from django.db import connection, transaction

    from events.services import NewEvent, event_records

    start.wait()
    index = 0
    while index < events:
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
            event_records(batch)  # one statement per transaction, as a batch writer does
    connection.close()
