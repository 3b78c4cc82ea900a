"""Test helpers shared by the reminder and recurrence tests: the events a user has in the outbox,
and running the real event pipeline (relay, then consumers) step by step."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from events.consumers import get_consumer
from events.models import OutboxEvent
from events.schemas import Envelope, parse_envelope
from events.tests.support import consume_all, relay_all


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
    relay_all()
    return sum(consume_all(get_consumer(name)) for name in names)


def soon(**delta) -> datetime:
    return timezone.now() + timedelta(**delta)
