"""``POST /job/<name>``: the Dapr Jobs trigger."""

import json
from datetime import timedelta

import pytest
from django.test import Client

from reminders.models import Reminder, ReminderState
from reminders.representation import job_data
from reminders.tests.helpers import recorded, soon
from tasks import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def dapr(settings):
    settings.EVENTS_BROKER = "embedded"  # the endpoint answers whatever the mode; no sidecar here
    settings.APP_API_TOKEN = ""
    return Client()


def _task_with_reminder(user_id, **fields):
    fields.setdefault("due_date", soon(days=1))
    fields.setdefault("reminder_time", "1h")
    return services.task_create(user_id=user_id, title=fields.pop("title", "Call Bob"), **fields)


def _trigger(client, name, data=None, **headers):
    body = json.dumps(data) if data is not None else ""
    return client.post(f"/job/{name}", data=body, content_type="application/json", headers=headers)


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

    assert response.status_code == 404
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

    assert response.status_code == 404
    assert recorded(user_id, "reminder.triggered") == []


def test_a_trigger_without_data_is_judged_by_the_reminder_alone(dapr, user_id):
    task = _task_with_reminder(user_id)

    first = _trigger(dapr, f"reminder-task-{task.pk}")
    second = _trigger(dapr, f"reminder-task-{task.pk}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(recorded(user_id, "reminder.triggered")) == 1


@pytest.mark.parametrize(
    "name", ["reminder-task-999999999", "reminder-task-abc", "backup", "reminder-task-0"]
)
def test_unknown_job_names_answer_404(dapr, name):
    assert _trigger(dapr, name, {}).status_code == 404


def test_data_naming_another_task_is_stale(dapr, user_id):
    task = _task_with_reminder(user_id)
    data = {**job_data(Reminder.objects.get(task_id=task.pk)), "task_id": task.pk + 1}

    assert _trigger(dapr, f"reminder-task-{task.pk}", data).status_code == 404
    assert recorded(user_id, "reminder.triggered") == []


def test_the_app_token_is_required_when_configured(dapr, settings, user_id):
    settings.APP_API_TOKEN = "s3cret-app-token"
    task = _task_with_reminder(user_id)
    data = job_data(Reminder.objects.get(task_id=task.pk))
    name = f"reminder-task-{task.pk}"

    missing = _trigger(dapr, name, data)
    wrong = _trigger(dapr, name, data, **{"dapr-api-token": "guess"})
    right = _trigger(dapr, name, data, **{"dapr-api-token": "s3cret-app-token"})

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert len(recorded(user_id, "reminder.triggered")) == 1


def test_only_post_is_accepted(dapr, user_id):
    task = _task_with_reminder(user_id)

    response = dapr.get(f"/job/reminder-task-{task.pk}")

    assert response.status_code == 405
    assert Reminder.objects.get(task_id=task.pk).state == ReminderState.SCHEDULED


def test_a_trigger_long_after_its_time_still_fires_and_says_when(dapr, user_id):
    task = services.task_create(
        user_id=user_id,
        title="t",
        due_date=soon(minutes=10),
        reminder_time="1h",
        check_reminder_in_past=False,
    )

    _trigger(dapr, f"reminder-task-{task.pk}")

    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.fired_at - triggered.payload.remind_at >= timedelta(minutes=50)
