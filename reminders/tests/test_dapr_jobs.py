"""Reminders as Dapr jobs, against an in-process sidecar built from the SDK's gRPC stubs."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction

from reminders import jobs
from reminders.models import Reminder, ReminderState
from reminders.representation import job_data
from reminders.tests.helpers import soon
from reminders.tests.sidecar import JobCall, RecordingSidecar
from tasks import services


@pytest.fixture
def sidecar(settings, monkeypatch):
    """Start a recording sidecar (``stable=False``: one that only has the Alpha1 Jobs API)
    and point ``DaprClient()`` at it through the SDK's own environment variables."""
    started: list[RecordingSidecar] = []

    def start(*, stable: bool = True) -> RecordingSidecar:
        running = RecordingSidecar(stable=stable).start()
        started.append(running)
        monkeypatch.setenv("DAPR_GRPC_ENDPOINT", f"127.0.0.1:{running.grpc_port}")
        monkeypatch.setenv("DAPR_HTTP_ENDPOINT", f"http://127.0.0.1:{running.http_port}")
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
        jobs.close_client()
        return running

    settings.EVENTS_BROKER = "dapr"
    yield start
    jobs.close_client()
    for running in started:
        running.stop()


@pytest.mark.django_db
@pytest.mark.parametrize("stable", [True, False], ids=["stable-jobs-api", "alpha1-only-sidecar"])
def test_reminder_is_scheduled_rescheduled_and_cancelled_as_a_dapr_job(
    sidecar, user_id, stable, django_capture_on_commit_callbacks
):
    committed = django_capture_on_commit_callbacks
    dapr = sidecar(stable=stable)
    schedule_rpc, delete_rpc = (
        ("ScheduleJob", "DeleteJob") if stable else ("ScheduleJobAlpha1", "DeleteJobAlpha1")
    )

    # given a task due 10:00 London summer time with a reminder an hour before
    with committed(execute=True):
        task = services.task_create(
            user_id=user_id,
            title="Renew passport",
            due_date="2031-07-01T10:00:00",
            timezone_name="Europe/London",
            reminder_time="1h",
        )
    name = f"reminder-task-{task.pk}"
    reminder = Reminder.objects.get(task_id=task.pk)

    def scheduled(due_time: str, generation: int, remind_at: str) -> JobCall:
        data = {
            "reminder_id": reminder.pk,
            "task_id": task.pk,
            "user_id": user_id,
            "generation": generation,
            "remind_at": remind_at,
        }
        return JobCall(rpc=schedule_rpc, name=name, due_time=due_time, overwrite=True, data=data)

    assert dapr.calls == [scheduled("2031-07-01T09:00:00+01:00", 1, "2031-07-01T08:00:00Z")]
    assert reminder.job_synced is True

    # when the due date moves into winter time, the job is overwritten under the same name
    with committed(execute=True):
        services.task_update(
            user_id=user_id, task_id=task.pk, changes={"due_date": "2031-12-01T10:00:00"}
        )
    assert dapr.calls[1] == scheduled("2031-12-01T09:00:00+00:00", 2, "2031-12-01T09:00:00Z")

    # and completing the task deletes the job
    with committed(execute=True):
        services.task_complete(user_id=user_id, task_id=task.pk)
    assert dapr.calls[2] == JobCall(rpc=delete_rpc, name=name)
    assert len(dapr.calls) == 3
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.CANCELLED
    assert reminder.job_synced is True


@pytest.mark.django_db(transaction=True)
def test_the_job_is_scheduled_after_commit_and_never_for_a_rolled_back_change(sidecar, user_id):
    dapr = sidecar()

    with transaction.atomic():
        task = services.task_create(
            user_id=user_id,
            title="t",
            due_date="2031-01-15T09:00:00",
            timezone_name="America/New_York",
            reminder_time="30m",
        )
        assert dapr.calls == []  # nothing leaves the process inside the transaction
    assert [(c.rpc, c.name, c.due_time) for c in dapr.calls] == [
        ("ScheduleJob", f"reminder-task-{task.pk}", "2031-01-15T08:30:00-05:00")
    ]

    with pytest.raises(RuntimeError), transaction.atomic():
        services.task_create(user_id=user_id, title="u", due_date=soon(days=1), reminder_time="1h")
        raise RuntimeError("abort")
    assert len(dapr.calls) == 1


@pytest.mark.django_db
def test_a_failed_sidecar_call_leaves_the_reminder_unsynced_until_the_retry(
    sidecar, user_id, django_capture_on_commit_callbacks
):
    dapr = sidecar()
    dapr.servicer.failures = 1

    with django_capture_on_commit_callbacks(execute=True):
        task = services.task_create(
            user_id=user_id, title="t", due_date=soon(days=1), reminder_time="1h"
        )

    assert dapr.calls == []
    assert Reminder.objects.get(task_id=task.pk).job_synced is False

    synced, failed = jobs.sync_pending_jobs(older_than=timedelta(0))

    assert (synced, failed) == (1, 0)
    assert [(c.rpc, c.name, c.data["generation"]) for c in dapr.calls] == [
        ("ScheduleJob", f"reminder-task-{task.pk}", 1)
    ]
    assert Reminder.objects.get(task_id=task.pk).job_synced is True
    assert jobs.sync_pending_jobs(older_than=timedelta(0)) == (0, 0)


@pytest.mark.django_db
def test_the_scheduler_command_resyncs_in_dapr_mode_and_fires_nothing(
    sidecar, user_id, django_capture_on_commit_callbacks
):
    dapr = sidecar()
    dapr.servicer.failures = 1  # the after-commit call fails
    with django_capture_on_commit_callbacks(execute=True):
        task = services.task_create(
            user_id=user_id,
            title="t",
            due_date=soon(minutes=30),
            reminder_time="1h",
            check_reminder_in_past=False,  # already due: only Dapr may fire it
        )
    assert Reminder.objects.get(task_id=task.pk).job_synced is False

    call_command("run_reminder_scheduler", "--once")

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.job_synced is True
    assert reminder.state == ReminderState.SCHEDULED
    assert [c.rpc for c in dapr.calls] == ["ScheduleJob"]


@pytest.mark.django_db
def test_deleting_a_job_that_already_ran_counts_as_done(
    sidecar, user_id, django_capture_on_commit_callbacks
):
    dapr = sidecar()
    with django_capture_on_commit_callbacks(execute=True):
        task = services.task_create(
            user_id=user_id, title="t", due_date=soon(days=1), reminder_time="1h"
        )
    dapr.servicer.jobs_gone = True

    with django_capture_on_commit_callbacks(execute=True):
        services.task_delete(user_id=user_id, task_id=task.pk)

    assert [c.rpc for c in dapr.calls] == ["ScheduleJob", "DeleteJob"]
    assert Reminder.objects.get(task_id=task.pk).job_synced is True


def test_job_names_round_trip_and_refuse_anything_else():
    assert jobs.job_name(42) == "reminder-task-42"
    assert jobs.task_id_from_job_name("reminder-task-42") == 42
    for name in ("reminder-task-", "reminder-task-04", "reminder-task-4x", "other-42", ""):
        assert jobs.task_id_from_job_name(name) is None


@pytest.mark.django_db
def test_a_process_that_does_not_own_jobs_leaves_them_to_the_web_process(
    sidecar, settings, user_id, django_capture_on_commit_callbacks
):
    # given a consumer process (the Jobs API would call a job back on its app id, which has no
    # /job/ endpoint), so it may not schedule jobs itself
    dapr = sidecar()
    settings.REMINDER_JOBS_OWNER = False

    # when it creates a task with a reminder (as the recurrence consumer does)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.task_create(
            user_id=user_id,
            title="Next instance",
            due_date="2031-07-01T10:00:00Z",
            reminder_time="1h",
        )

    # then nothing reaches the sidecar from here, and the reminder waits unsynced
    assert dapr.calls == []
    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.job_synced is False

    # and the web process's re-sync loop schedules it under the usual name
    settings.REMINDER_JOBS_OWNER = True
    assert jobs.sync_pending_jobs(older_than=timedelta(0)) == (1, 0)
    assert [call.name for call in dapr.calls] == [f"reminder-task-{task.pk}"]
    reminder.refresh_from_db()
    assert reminder.job_synced is True


@pytest.mark.django_db
def test_a_trigger_that_comes_early_has_the_same_job_scheduled_again(
    sidecar, settings, user_id, client, django_capture_on_commit_callbacks
):
    # given a reminder whose job Dapr holds
    dapr = sidecar()
    settings.APP_API_TOKEN = "app-token"
    with django_capture_on_commit_callbacks(execute=True):
        task = services.task_create(
            user_id=user_id, title="t", due_date="2031-07-01T10:00:00Z", reminder_time="1h"
        )
    reminder = Reminder.objects.get(task_id=task.pk)
    [scheduled] = dapr.calls

    # when Dapr triggers it years before its time (a skewed clock ends the one-shot job)
    response = client.post(
        f"/job/{jobs.job_name(task.pk)}",
        data=json.dumps(job_data(reminder)),
        content_type="application/json",
        headers={"dapr-api-token": "app-token"},
    )

    # then nothing fires, and the re-sync loop schedules the very same job again
    assert (response.status_code, response.json()) == (425, {"status": "early"})
    assert jobs.sync_pending_jobs(older_than=timedelta(0)) == (1, 0)
    assert dapr.calls == [scheduled, scheduled]
    reminder.refresh_from_db()
    assert (reminder.state, reminder.job_synced) == (ReminderState.SCHEDULED, True)
