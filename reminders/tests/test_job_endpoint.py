"""``POST /job/<name>``: the Dapr Jobs trigger, as Dapr calls it.

Hostile calls (no token, forged data, malformed bodies) are in ``test_hostile_job.py``.
"""

import json
from datetime import timedelta

import pytest
from django.test import Client

from reminders import jobs
from reminders.models import Notification, Reminder, ReminderState
from reminders.representation import job_data
from reminders.services import JOB_CLOCK_SKEW
from reminders.tests.helpers import recorded, soon
from tasks import services

pytestmark = pytest.mark.django_db

APP_TOKEN = "test-app-token"


@pytest.fixture
def dapr(settings):
    settings.EVENTS_BROKER = "dapr"
    settings.APP_API_TOKEN = APP_TOKEN
    return Client()


def _task_with_reminder(user_id, *, fire_in=timedelta(seconds=5), **fields):
    """A task whose reminder (an hour before it is due) comes ``fire_in`` from now."""
    fields.setdefault("due_date", soon(hours=1) + fire_in)
    return services.task_create(
        user_id=user_id,
        title=fields.pop("title", "Call Bob"),
        reminder_time="1h",
        check_reminder_in_past=False,
        **fields,
    )


def _trigger(client, name, data=None, *, token=APP_TOKEN):
    body = json.dumps(data) if data is not None else ""
    return client.post(
        f"/job/{name}",
        data=body,
        content_type="application/json",
        headers={"dapr-api-token": token},
    )


def test_a_due_trigger_fires_the_reminder_once_and_answers_200(dapr, user_id):
    task = _task_with_reminder(user_id)
    reminder = Reminder.objects.get(task_id=task.pk)

    response = _trigger(dapr, f"reminder-task-{task.pk}", job_data(reminder))

    assert response.status_code == 200
    assert response.json() == {"status": "fired"}
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.FIRED
    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.task_id == task.pk
    assert triggered.payload.remind_at == reminder.fire_at
    assert triggered.payload.fired_at == reminder.fired_at
    assert triggered.payload.task_data.title == "Call Bob"


def test_the_data_may_come_back_wrapped_as_dapr_packs_it(dapr, user_id):
    task = _task_with_reminder(user_id)
    reminder = Reminder.objects.get(task_id=task.pk)
    wrapped = {
        "@type": "type.googleapis.com/google.protobuf.StringValue",
        "value": json.dumps(job_data(reminder)),
    }

    response = _trigger(dapr, f"reminder-task-{task.pk}", wrapped)

    assert response.status_code == 200
    assert len(recorded(user_id, "reminder.triggered")) == 1


def test_the_data_may_come_back_as_the_packed_protobuf_bytes(dapr, user_id):
    task = _task_with_reminder(user_id)
    packed = jobs._job_payload(Reminder.objects.get(task_id=task.pk)).SerializeToString()

    response = dapr.post(
        f"/job/reminder-task-{task.pk}",
        data=packed,
        content_type="application/octet-stream",
        headers={"dapr-api-token": APP_TOKEN},
    )

    assert (response.status_code, response.json()) == (200, {"status": "fired"})


def test_a_repeated_trigger_answers_200_and_fires_nothing_more(dapr, user_id):
    task = _task_with_reminder(user_id)
    data = job_data(Reminder.objects.get(task_id=task.pk))
    _trigger(dapr, f"reminder-task-{task.pk}", data)

    again = _trigger(dapr, f"reminder-task-{task.pk}", data)

    assert again.status_code == 200
    assert again.json() == {"status": "already_fired"}
    assert len(recorded(user_id, "reminder.triggered")) == 1


def test_a_trigger_for_a_moved_reminder_is_stale(dapr, user_id):
    task = _task_with_reminder(user_id)
    old = job_data(Reminder.objects.get(task_id=task.pk))
    services.task_update(user_id=user_id, task_id=task.pk, changes={"due_date": soon(days=3)})

    response = _trigger(dapr, f"reminder-task-{task.pk}", old)

    assert (response.status_code, response.json()) == (404, {"status": "stale"})
    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.generation == 2
    assert recorded(user_id, "reminder.triggered") == []


@pytest.mark.parametrize("how", ["complete", "delete"])
def test_a_trigger_for_a_completed_or_deleted_task_is_stale(dapr, user_id, how):
    task = _task_with_reminder(user_id)
    data = job_data(Reminder.objects.get(task_id=task.pk))
    if how == "complete":
        services.task_complete(user_id=user_id, task_id=task.pk)
    else:
        services.task_delete(user_id=user_id, task_id=task.pk)

    response = _trigger(dapr, f"reminder-task-{task.pk}", data)

    assert (response.status_code, response.json()) == (404, {"status": "stale"})
    assert recorded(user_id, "reminder.triggered") == []


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("reminder-task-999999999", "stale"),  # a well-formed name with no reminder
        ("reminder-task-abc", "unknown_job"),
        ("backup", "unknown_job"),
        ("reminder-task-0", "unknown_job"),
    ],
)
def test_unknown_job_names_answer_404(dapr, name, status):
    data = {"generation": 1, "remind_at": "2031-01-01T00:00:00Z"}

    response = _trigger(dapr, name, data)

    assert (response.status_code, response.json()) == (404, {"status": status})


def test_data_naming_another_task_is_stale(dapr, user_id):
    task = _task_with_reminder(user_id)
    data = {**job_data(Reminder.objects.get(task_id=task.pk)), "task_id": task.pk + 1}

    response = _trigger(dapr, f"reminder-task-{task.pk}", data)

    assert (response.status_code, response.json()) == (404, {"status": "stale"})
    assert recorded(user_id, "reminder.triggered") == []


def test_a_trigger_within_the_clock_skew_fires(dapr, user_id):
    # given a reminder a little less than the allowed skew away (Dapr's clock runs ahead)
    task = _task_with_reminder(user_id, fire_in=JOB_CLOCK_SKEW - timedelta(seconds=10))

    response = _trigger(
        dapr, f"reminder-task-{task.pk}", job_data(Reminder.objects.get(task_id=task.pk))
    )

    assert (response.status_code, response.json()) == (200, {"status": "fired"})


def test_an_early_trigger_fires_nothing_and_has_the_job_scheduled_again(dapr, user_id):
    # given a reminder whose job Dapr triggers two minutes before its time
    task = _task_with_reminder(user_id, fire_in=timedelta(minutes=2))
    reminder = Reminder.objects.get(task_id=task.pk)
    reminder_before = job_data(reminder)
    Reminder.objects.filter(pk=reminder.pk).update(job_synced=True)  # as once Dapr holds the job

    # when the trigger arrives
    response = _trigger(dapr, f"reminder-task-{task.pk}", job_data(reminder))

    # then it is answered "early" with a status Dapr retries, nothing fires, and the row asks
    # the re-sync loop to schedule the job again for its real time
    assert (response.status_code, response.json()) == (425, {"status": "early"})
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.fired_at is None
    assert job_data(reminder) == reminder_before
    assert reminder.job_synced is False
    assert recorded(user_id, "reminder.triggered") == []
    assert not Notification.objects.filter(task_id=task.pk).exists()


def test_a_trigger_long_after_its_time_still_fires_and_says_when(dapr, user_id):
    task = _task_with_reminder(user_id, fire_in=-timedelta(minutes=50))

    response = _trigger(
        dapr, f"reminder-task-{task.pk}", job_data(Reminder.objects.get(task_id=task.pk))
    )

    assert response.status_code == 200
    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.fired_at - triggered.payload.remind_at >= timedelta(minutes=50)
