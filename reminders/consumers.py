"""The ``notifications`` consumer: one inbox entry per fired reminder.

Reads ``reminder.triggered`` from the ``reminders`` topic. The consumer framework records the
event id in its idempotency table in the handler's transaction; the unique (reminder, remind_at)
constraint makes a second trigger of the same firing (another event for the same firing) give
one notification as well. The service takes the user's lock itself.
"""

from __future__ import annotations

from events.consumers import register_consumer
from events.topics import REMINDERS
from reminders import event_types, services


@register_consumer("notifications", topic=REMINDERS, event_types={event_types.REMINDER_TRIGGERED})
def create_notification(envelope) -> None:
    payload = envelope.payload
    services.notification_create_for_trigger(
        user_id=envelope.user_id,
        task_id=payload.task_id,
        remind_at=payload.remind_at,
        fired_at=payload.fired_at,
        title=payload.task_data.title,
        due_at=payload.task_data.due_date,
    )
