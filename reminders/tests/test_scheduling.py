"""A task's reminder follows the task, in the task change's own transaction."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from reminders.models import Reminder, ReminderState
from reminders.tests.helpers import recorded, soon
from tasks import services
from tasks.errors import TaskValidationError

pytestmark = pytest.mark.django_db


def test_creating_a_task_with_a_reminder_schedules_it_and_records_one_event(user_id):
    due = soon(days=2)
    task = services.task_create(user_id=user_id, title="Dentist", due_date=due, reminder_time="1h")

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.user_id == user_id
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.fire_at == task.remind_at == due - timedelta(hours=1)
    assert reminder.generation == 1
    assert reminder.title == "Dentist"
    assert reminder.job_synced is True  # embedded mode: there is no Jobs API to sync with
    [scheduled] = recorded(user_id, "reminder.scheduled")
    assert scheduled.payload.task_id == task.pk
    assert scheduled.payload.remind_at == reminder.fire_at
    assert scheduled.payload.previous_remind_at is None
    assert scheduled.payload.task_data.title == "Dentist"
    assert [e.event_type for e in recorded(user_id)] == ["task.created", "reminder.scheduled"]
    assert recorded(user_id, "reminder.cancelled") == []


def test_a_task_without_a_reminder_gets_no_reminder(user_id):
    task = services.task_create(user_id=user_id, title="No reminder", due_date=soon(days=1))

    assert not Reminder.objects.filter(task_id=task.pk).exists()
    assert recorded(user_id, "reminder.scheduled") == []


def test_moving_the_due_date_moves_the_reminder_to_a_new_generation(user_id):
    task = services.task_create(
        user_id=user_id, title="t", due_date=soon(days=2), reminder_time="30m"
    )
    first = Reminder.objects.get(task_id=task.pk)
    new_due = soon(days=5)

    task, _ = services.task_update(user_id=user_id, task_id=task.pk, changes={"due_date": new_due})

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.pk == first.pk
    assert reminder.fire_at == new_due - timedelta(minutes=30)
    assert reminder.generation == 2
    assert reminder.state == ReminderState.SCHEDULED
    first_scheduled, moved = recorded(user_id, "reminder.scheduled")
    assert moved.payload.remind_at == reminder.fire_at
    assert moved.payload.previous_remind_at == first.fire_at == first_scheduled.payload.remind_at


def test_changing_only_the_reminder_offset_reschedules(user_id):
    due = soon(days=3)
    task = services.task_create(user_id=user_id, title="t", due_date=due, reminder_time="1h")

    services.task_update(user_id=user_id, task_id=task.pk, changes={"reminder_time": "1d"})

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.fire_at == due - timedelta(days=1)
    assert reminder.generation == 2


def test_changing_the_title_keeps_the_reminder_and_records_nothing_new(user_id):
    task = services.task_create(
        user_id=user_id, title="Old", due_date=soon(days=2), reminder_time="1h"
    )

    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "New"})

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.title == "New"
    assert reminder.generation == 1
    assert len(recorded(user_id, "reminder.scheduled")) == 1
    assert recorded(user_id, "reminder.cancelled") == []


@pytest.mark.parametrize("how", ["complete", "delete", "clear"])
def test_completing_deleting_or_clearing_cancels_the_reminder(user_id, how):
    task = services.task_create(
        user_id=user_id, title="t", due_date=soon(days=2), reminder_time="1h"
    )

    if how == "complete":
        services.task_complete(user_id=user_id, task_id=task.pk)
    elif how == "delete":
        services.task_delete(user_id=user_id, task_id=task.pk)
    else:
        services.task_update(user_id=user_id, task_id=task.pk, changes={"reminder_time": None})

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.CANCELLED
    [cancelled] = recorded(user_id, "reminder.cancelled")
    assert (
        cancelled.payload.reason
        == {"complete": "completed", "delete": "deleted", "clear": "cleared"}[how]
    )
    assert cancelled.payload.task_id == task.pk
    assert cancelled.payload.remind_at == reminder.fire_at


def test_reopening_a_task_schedules_its_reminder_again(user_id):
    task = services.task_create(
        user_id=user_id, title="t", due_date=soon(days=2), reminder_time="1h"
    )
    services.task_complete(user_id=user_id, task_id=task.pk)

    services.task_reopen(user_id=user_id, task_id=task.pk)

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.generation == 2
    assert len(recorded(user_id, "reminder.scheduled")) == 2


def test_a_reminder_already_past_is_refused_at_creation(user_id):
    with pytest.raises(TaskValidationError) as info:
        services.task_create(
            user_id=user_id, title="t", due_date=soon(minutes=20), reminder_time="1h"
        )

    assert info.value.field == "reminder_time"
    assert info.value.code == "in_past"
    assert not Reminder.objects.filter(user_id=user_id).exists()
    assert recorded(user_id) == []


def test_an_overdue_task_with_a_past_reminder_is_accepted_but_reminds_of_nothing(user_id):
    task = services.task_create(
        user_id=user_id, title="late", due_date=soon(hours=-2), reminder_time="1h"
    )

    assert task.remind_at < timezone.now()
    assert not Reminder.objects.filter(task_id=task.pk).exists()
    assert recorded(user_id, "reminder.scheduled") == []


def test_a_past_reminder_on_a_task_still_to_come_fires_at_once(user_id):
    # How the recurrence consumer creates an instance whose reminder time has just passed.
    task = services.task_create(
        user_id=user_id,
        title="soon",
        due_date=soon(minutes=30),
        reminder_time="1h",
        check_reminder_in_past=False,
    )

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.fire_at <= timezone.now()


def test_a_rolled_back_task_change_leaves_no_reminder(user_id):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.task_create(user_id=user_id, title="t", due_date=soon(days=1), reminder_time="1h")
        raise RuntimeError("abort")

    assert not Reminder.objects.filter(user_id=user_id).exists()
