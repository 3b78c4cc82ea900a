"""Helpers the events tests share: a test consumer with a real effect, and ways to run the
pipeline step by step."""

from __future__ import annotations

import os
import threading
import time

from django.db import connection

from events import topics
from events.brokers.embedded import EmbeddedBroker
from events.consumers import Consumer, register, unregister
from events.relay import relay_once
from events.runners import EmbeddedConsumerRunner
from tasks import services

FOLLOWUPS = "test-followups"
# Attempts seen per event id, for handlers that fail a given number of times.
attempts: dict[str, int] = {}
_lock = threading.Lock()


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


def relay_all(broker=None) -> int:
    broker = broker or EmbeddedBroker()
    total = 0
    while True:
        result = relay_once(broker)
        if result.published:
            broker.after_commit([])
        total += result.published
        if not result.published:
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
    from urllib.parse import quote

    settings = connection.settings_dict
    host = settings["HOST"] or ""
    user = quote(settings["USER"] or "postgres")
    password = f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    name = settings["NAME"]
    if host.startswith("/"):
        port = f"&port={settings['PORT']}" if settings["PORT"] else ""
        return f"postgresql://{user}{password}@/{name}?host={quote(host)}{port}"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgresql://{user}{password}@{host}{port}/{name}"
