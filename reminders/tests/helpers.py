"""Test helpers shared by the reminder and recurrence tests: the events a user has in the outbox,
and running the real event pipeline (relay, then consumers) step by step."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from events.brokers.embedded import EmbeddedBroker
from events.consumers import get_consumer
from events.models import OutboxEvent
from events.relay import relay_once
from events.runners import EmbeddedConsumerRunner
from events.schemas import Envelope, parse_envelope


def recorded(user_id: str, event_type: str | None = None) -> list[Envelope]:
    """Envelopes recorded for ``user_id`` so far (of one type), in sequence order, each
    validated again through its schema."""
    rows = OutboxEvent.objects.filter(user_id=user_id).order_by("sequence")
    if event_type is not None:
        rows = rows.filter(event_type=event_type)
    return [parse_envelope(row.envelope) for row in rows]


def payloads(user_id: str, event_type: str) -> list[dict]:
    return [envelope.payload.model_dump(mode="json") for envelope in recorded(user_id, event_type)]


def run_consumers(*names: str) -> int:
    """Publish every committed (or, inside a test transaction, written) outbox row to the
    embedded log, then let the named consumers read it all. Returns how many rows they read."""
    broker = EmbeddedBroker()
    while relay_once(broker).published:
        pass
    total = 0
    for name in names:
        runner = EmbeddedConsumerRunner(get_consumer(name))
        while handled := runner.poll():
            total += handled
    return total


def soon(**delta) -> datetime:
    return timezone.now() + timedelta(**delta)


def database_url() -> str:
    """A DATABASE_URL that reaches the test database, for a command run as its own process."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    user = quote(db["USER"] or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = db["HOST"] or ""
    if host.startswith("/"):  # a Unix socket directory (the embedded server)
        return f"postgresql://{user}{password}@/{db['NAME']}?host={quote(host)}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{user}{password}@{host}{port}/{db['NAME']}"
