"""Helpers the events tests share: a test consumer with a real effect, and ways to run the
pipeline step by step."""

from __future__ import annotations

import os
import threading
import time

from django.db import connection

from bench import benchmarks
from events import topics
from events.brokers.embedded import EmbeddedBroker
from events.consumers import Consumer, register, unregister
from events.models import OutboxEvent
from events.relay import relay_once
from events.runners import EmbeddedConsumerRunner
from tasks import services
from tasks.models import Task
from tasks.representation import task_to_dict

FOLLOWUPS = "test-followups"
# Attempts seen per event id, for handlers that fail a given number of times.
attempts: dict[str, int] = {}
_lock = threading.Lock()


def title_update(task, title: str) -> dict:
    """The payload of a ``task.updated`` event that renames ``task`` to ``title``."""
    return {
        "task_id": task.pk,
        "task_data": {**task_to_dict(task), "title": title},
        "changed_fields": ["title"],
        "previous": {"title": task.title},
    }


def followup_title(event_id) -> str:
    return f"follow-up {event_id}"


def create_followup(event) -> None:
    """For each ``task.updated``: a new task for the same user. No unique key guards it, so a
    second application of one event would show as a second task."""
    title = event.payload.task_data.title
    with _lock:
        attempts[str(event.event_id)] = attempts.get(str(event.event_id), 0) + 1
        seen = attempts[str(event.event_id)]
    delay = float(os.environ.get("FOLLOWUP_DELAY", "0"))
    if delay:
        time.sleep(delay)
    if title.startswith("poison"):
        raise RuntimeError(f"cannot handle {title!r}")
    if title.startswith("flaky") and seen < 3:
        raise RuntimeError(f"transient failure {seen} on {title!r}")
    services.task_create(user_id=event.user_id, title=followup_title(event.event_id))


def register_followups(**options) -> Consumer:
    unregister(FOLLOWUPS)
    return register(
        Consumer(
            name=FOLLOWUPS,
            topic=topics.TASK_EVENTS,
            handle=create_followup,
            event_types=frozenset({"task.updated"}),
            **options,
        )
    )


def updates_of(user_id: str, titles: list[str]) -> list[str]:
    """A task, then one update per title; returns the update events' ids."""
    task = services.task_create(user_id=user_id, title="start")
    for title in titles:
        services.task_update(user_id=user_id, task_id=task.pk, changes={"title": title})
    return [
        str(event_id)
        for event_id in OutboxEvent.objects.filter(user_id=user_id, event_type="task.updated")
        .order_by("sequence")
        .values_list("event_id", flat=True)
    ]


def followups_of(event_ids: list[str]) -> list[int]:
    """How many follow-up tasks each event made (exactly one once it was applied)."""
    return [Task.objects.filter(title=followup_title(event_id)).count() for event_id in event_ids]


def run_in_threads(*targets, timeout: float = 60.0) -> None:
    """Run each callable in its own thread (with its own database connection) and wait for all.

    An exception in a thread, or a thread still running after ``timeout``, fails the caller:
    a thread's failure would otherwise only be a warning."""
    errors: list[BaseException] = []

    def run(target) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"


def relay_all(broker=None) -> int:
    broker = broker or EmbeddedBroker()
    total = 0
    while True:
        published = relay_once(broker).published
        total += published
        if not published:
            return total


def consume_all(consumer: Consumer) -> int:
    runner = EmbeddedConsumerRunner(consumer)
    total = 0
    while True:
        handled = runner.poll()
        total += handled
        if not handled:
            return total


def database_url() -> str:
    """A DATABASE_URL for subprocesses that reaches the test database."""
    return benchmarks.database_url(connection.settings_dict["NAME"])
