"""The polling scheduler of the embedded mode."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from events.tests.support import database_url
from reminders import services as reminder_services
from reminders.models import Notification, Reminder, ReminderState
from reminders.scheduler import ReminderScheduler, start_in_thread
from reminders.tests.helpers import recorded, run_consumers, soon
from tasks import services
from tasks.tests.helpers import user_lock_held


def _due_reminder(user_id, *, minutes_ago=5, title="Water plants"):
    """A task still to come whose reminder time has passed: its reminder is due now."""
    return services.task_create(
        user_id=user_id,
        title=title,
        due_date=soon(hours=1),
        reminder_time=timedelta(hours=1, minutes=minutes_ago),
        check_reminder_in_past=False,
    )


@pytest.mark.django_db
def test_a_due_reminder_fires_once_and_is_marked_fired(user_id):
    task = _due_reminder(user_id, minutes_ago=0)
    scheduler = ReminderScheduler()

    assert scheduler.fire_due() == 1
    assert scheduler.fire_due() == 0

    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.FIRED
    assert reminder.fired_at >= reminder.fire_at
    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.task_id == task.pk
    assert triggered.payload.remind_at == reminder.fire_at
    assert triggered.payload.fired_at == reminder.fired_at
    assert reminder.fired_at - reminder.fire_at < timedelta(seconds=5)


@pytest.mark.django_db
def test_a_reminder_not_yet_due_is_left_alone(user_id):
    task = services.task_create(
        user_id=user_id, title="t", due_date=soon(days=1), reminder_time="1h"
    )

    assert ReminderScheduler().fire_due() == 0

    assert Reminder.objects.get(task_id=task.pk).state == ReminderState.SCHEDULED
    assert recorded(user_id, "reminder.triggered") == []


@pytest.mark.django_db(transaction=True)  # the notifications consumer reads committed events
def test_reminders_that_came_due_while_no_scheduler_ran_fire_on_start_marked_late(user_id):
    task = _due_reminder(user_id, minutes_ago=40)

    assert ReminderScheduler().fire_due() == 1
    run_consumers("notifications")

    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.task_id == task.pk
    assert triggered.payload.fired_at - triggered.payload.remind_at >= timedelta(minutes=40)
    [notification] = Notification.objects.filter(user_id=user_id)
    assert notification.late is True


@pytest.mark.django_db
def test_a_reminder_moved_before_it_fired_waits_for_its_new_time(user_id):
    task = _due_reminder(user_id)

    services.task_update(user_id=user_id, task_id=task.pk, changes={"reminder_time": "30m"})

    assert ReminderScheduler().fire_due() == 0
    reminder = Reminder.objects.get(task_id=task.pk)
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.generation == 2
    assert recorded(user_id, "reminder.triggered") == []


@pytest.mark.django_db
def test_a_pass_that_dies_leaves_its_reminders_for_the_next(user_id):
    task = _due_reminder(user_id)

    with pytest.raises(RuntimeError), transaction.atomic():
        assert reminder_services.reminders_fire_due().fired == 1
        raise RuntimeError("the scheduler died before its commit")

    assert Reminder.objects.get(task_id=task.pk).state == ReminderState.SCHEDULED
    assert recorded(user_id, "reminder.triggered") == []
    assert ReminderScheduler().fire_due() == 1
    assert len(recorded(user_id, "reminder.triggered")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_pass_waits_for_a_busy_users_lock_and_then_fires(user_id, other_user_id):
    busy_task = _due_reminder(user_id)
    free_task = _due_reminder(other_user_id)

    with user_lock_held(user_id, seconds=0.3) as held:
        fired = ReminderScheduler().fire_due()
        finished = time.monotonic()

    assert fired == 2
    assert finished > held.released_at  # it waited for the holder instead of firing around it
    assert Reminder.objects.get(task_id=busy_task.pk).state == ReminderState.FIRED
    assert Reminder.objects.get(task_id=free_task.pk).state == ReminderState.FIRED
    assert len(recorded(user_id, "reminder.triggered")) == 1
    assert len(recorded(other_user_id, "reminder.triggered")) == 1


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_fire_each_of_many_reminders_exactly_once(user_id, other_user_id):
    users = [user_id, other_user_id]
    tasks = [_due_reminder(users[i % 2], title=f"r{i}") for i in range(40)]
    reminder_ids = set(
        Reminder.objects.filter(task_id__in=[t.pk for t in tasks]).values_list("pk", flat=True)
    )
    fired_by: dict[str, int] = {}
    start = threading.Barrier(2)

    def run(name):
        scheduler = ReminderScheduler(name=name, batch_size=3)
        start.wait()
        try:
            fired_by[name] = scheduler.fire_due()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(fired_by.values()) == 40
    triggered = Counter(e.payload.task_id for u in users for e in recorded(u, "reminder.triggered"))
    assert set(triggered) == {t.pk for t in tasks}
    assert set(triggered.values()) == {1}
    assert set(Reminder.objects.filter(pk__in=reminder_ids).values_list("state", flat=True)) == {
        ReminderState.FIRED
    }


@pytest.mark.django_db(transaction=True)
def test_a_sleeping_scheduler_wakes_for_a_new_reminder_and_fires_it_on_time(user_id):
    # max_sleep far beyond the test: only the wake-up at commit and the sleep until the due
    # time can make the reminder fire on time.
    scheduler, thread = start_in_thread(ReminderScheduler(max_sleep=60))
    try:
        time.sleep(0.3)  # the scheduler has found nothing and sleeps
        remind_at = timezone.now() + timedelta(seconds=1.5)
        task = services.task_create(
            user_id=user_id,
            title="Stand-up",
            due_date=remind_at + timedelta(minutes=10),
            reminder_time="10m",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if Reminder.objects.filter(task_id=task.pk, state=ReminderState.FIRED).exists():
                break
            time.sleep(0.05)
    finally:
        scheduler.stop()
        thread.join(5)

    assert not thread.is_alive()
    [triggered] = recorded(user_id, "reminder.triggered")
    assert triggered.payload.task_id == task.pk
    assert (
        timedelta(0)
        <= triggered.payload.fired_at - triggered.payload.remind_at
        < timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
async def test_the_server_lifespan_runs_a_scheduler_and_stops_it(user_id):
    from asgiref.sync import sync_to_async

    from reminders.scheduler import in_process_scheduler
    from todo_project.asgi import lifespan_parts

    assert ("reminder-scheduler", in_process_scheduler) in lifespan_parts()
    task = await sync_to_async(_due_reminder)(user_id)

    fired = Reminder.objects.filter(task_id=task.pk, state=ReminderState.FIRED)
    try:
        async with in_process_scheduler() as scheduler:
            for _ in range(100):
                if await fired.aexists():
                    break
                await asyncio.sleep(0.05)
            assert not scheduler.stopped

        assert scheduler.stopped
        assert await fired.aexists()
    finally:
        # the connection of the thread sync_to_async ran the queries in
        await sync_to_async(lambda: connection.close())()


@pytest.mark.django_db(transaction=True)
def test_the_command_runs_as_its_own_process_and_stops_on_sigterm(user_id):
    task = _due_reminder(user_id)
    env = {**os.environ, "DATABASE_URL": database_url(), "RUN_WORKERS_IN_PROCESS": "0"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_reminder_scheduler", "--metrics-port", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        fired = Reminder.objects.filter(task_id=task.pk, state=ReminderState.FIRED)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not fired.exists():
            time.sleep(0.1)
        assert fired.exists()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)

    assert process.returncode == 0, output.decode()
    assert len(recorded(user_id, "reminder.triggered")) == 1
