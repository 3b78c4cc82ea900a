"""The ``recurrence`` consumer: the next instance when a recurring task is completed or skipped,
and the end of a series when a task is deleted with ``stop_series``.

The consumer framework runs the handler in a transaction holding the user's lock and records
the event id in its idempotency table; ``series_create_next`` is idempotent on its own as well
(a later instance already there, or the series' unique due time), so a completion seen twice,
or by two consumers at once, gives one next instance.
"""

from __future__ import annotations

from events.consumers import register_consumer
from events.topics import TASK_EVENTS
from recurrence import services

TASK_COMPLETED = "task.completed"
TASK_SKIPPED = "task.skipped"
TASK_DELETED = "task.deleted"


@register_consumer(
    "recurrence", topic=TASK_EVENTS, event_types={TASK_COMPLETED, TASK_SKIPPED, TASK_DELETED}
)
def handle_task_event(envelope) -> None:
    # The framework hands over validated envelopes: ``task_data`` is always there and its id
    # is ``task_id``.
    payload = envelope.payload
    snapshot = payload.task_data
    if envelope.event_type in {TASK_COMPLETED, TASK_SKIPPED}:
        services.series_create_next(
            user_id=envelope.user_id, snapshot=snapshot.model_dump(mode="json")
        )
    elif envelope.event_type == TASK_DELETED and payload.stop_series and snapshot.series_id:
        services.series_stop(
            user_id=envelope.user_id, series_id=snapshot.series_id, task_id=payload.task_id
        )
