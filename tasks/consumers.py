"""The audit consumer: every task event becomes a row of that task's history, which its owner
reads at ``GET /api/tasks/<id>/history/``."""

from __future__ import annotations

from events import topics
from events.consumers import Consumer, register
from events.schemas import Envelope
from tasks.event_types import TASK_EVENT_TYPES
from tasks.services import task_history_record

# Consumer cursors and idempotency keys are stored under this name.
NAME = "audit"


def record_one(event: Envelope) -> None:
    task_history_record(envelopes=[event])


def record_many(events: list[Envelope]) -> None:
    task_history_record(envelopes=events)


def register_audit_consumer() -> Consumer:
    return register(
        Consumer(
            name=NAME,
            topic=topics.TASK_EVENTS,
            handle=record_one,
            handle_batch=record_many,
            event_types=TASK_EVENT_TYPES,
            writes_for_users=False,  # history rows carry the event's own sequence
        )
    )
