"""The ``notifications`` consumer: one inbox entry per fired reminder.

Reads ``reminder.triggered`` from the ``reminders`` topic. The consumer framework records the
event id in its idempotency table in the handler's transaction; the unique (reminder, remind_at)
constraint makes a second trigger of the same firing (another event for the same firing) give
one notification as well. A batch of events becomes one insert of entries and one write of
their events; the service takes the users' locks itself.
"""

from __future__ import annotations

from events.consumers import register_consumer
from events.topics import REMINDERS
from reminders import event_types, services


def _trigger(envelope) -> services.Trigger:
    payload = envelope.payload
    return services.Trigger(
        user_id=envelope.user_id,
        task_id=payload.task_id,
        remind_at=payload.remind_at,
        fired_at=payload.fired_at,
        title=payload.task_data.title,
        due_at=payload.task_data.due_date,
    )


def create_notifications(envelopes) -> None:
    services.notifications_create_for_triggers([_trigger(envelope) for envelope in envelopes])


@register_consumer(
    "notifications",
    topic=REMINDERS,
    event_types={event_types.REMINDER_TRIGGERED},
    handle_batch=create_notifications,
)
def create_notification(envelope) -> None:
    create_notifications([envelope])
