"""The reminder receiver runs inside the task change's transaction, after the task's own event:
the order of one transaction's events does not depend on the order of apps or receivers."""

from __future__ import annotations

import pytest

from reminders.tests.helpers import recorded, soon
from tasks import services
from tasks.signals import task_changed

pytestmark = pytest.mark.django_db

REMINDERS_RECEIVER = "reminders.follow_task"


@pytest.fixture
def reminders_receiver_first():
    """``task_changed``'s receivers in reverse, the reminders' one first: the order they would
    have if ``reminders`` came before every other app. Restored afterwards."""
    saved = list(task_changed.receivers)
    with task_changed.lock:
        task_changed.receivers.sort(key=lambda entry: entry[0][0] != REMINDERS_RECEIVER)
        task_changed.receivers[1:] = reversed(task_changed.receivers[1:])
        task_changed.sender_receivers_cache.clear()
    assert task_changed.receivers[0][0][0] == REMINDERS_RECEIVER
    yield
    with task_changed.lock:
        task_changed.receivers[:] = saved
        task_changed.sender_receivers_cache.clear()


def test_the_task_event_comes_first_even_when_the_reminders_receiver_runs_first(
    user_id, reminders_receiver_first
):
    # given the reminders' receiver first among task_changed's receivers
    # when a task with a reminder is created
    services.task_create(
        user_id=user_id, title="Dentist", due_date=soon(days=2), reminder_time="1h"
    )

    # then the outbox has task.created, then reminder.scheduled, with consecutive sequences
    events = recorded(user_id)
    assert [event.event_type for event in events] == ["task.created", "reminder.scheduled"]
    assert events[1].sequence == events[0].sequence + 1


def test_every_receiver_finds_the_task_event_already_recorded(user_id):
    # given a receiver connected before any other
    seen: list[list[str]] = []

    def look(sender, change, **kwargs):
        seen.append([event.event_type for event in recorded(change.user_id)])

    task_changed.connect(look, dispatch_uid="test.look_first")
    with task_changed.lock:
        task_changed.receivers.insert(0, task_changed.receivers.pop())
        task_changed.sender_receivers_cache.clear()
    try:
        # when a task with a reminder is created
        services.task_create(user_id=user_id, title="t", due_date=soon(days=2), reminder_time="1h")
    finally:
        task_changed.disconnect(dispatch_uid="test.look_first")

    # then the announcement came after the task's event and before the reminder's
    assert seen == [["task.created"]]
    assert [event.event_type for event in recorded(user_id)] == [
        "task.created",
        "reminder.scheduled",
    ]
