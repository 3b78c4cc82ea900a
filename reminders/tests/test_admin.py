"""The reminder and notification admin pages, through Django's test client as a staff user:
what an operator reads (state, next fire time, lateness) and that nothing can be edited here."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reminders import selectors
from reminders.admin import format_lateness
from reminders.models import Notification, Reminder, ReminderState
from reminders.scheduler import ReminderScheduler
from reminders.tests.helpers import run_consumers, soon
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def reminded_task(user_id, *, title, due, before):
    return services.task_create(
        user_id=user_id,
        title=title,
        due_date=due,
        reminder_time=before,
        check_reminder_in_past=False,
    )


def fire_one_late(user_id, title="Pay rent"):
    """A reminder whose time passed two minutes ago, fired now: late."""
    task = reminded_task(user_id, title=title, due=soon(hours=1), before=timedelta(minutes=62))
    ReminderScheduler().fire_due()
    run_consumers("notifications")
    return task


def test_lateness_reads_as_hours_minutes_and_seconds():
    assert format_lateness(timedelta(milliseconds=300)) == "on time"
    assert format_lateness(timedelta(seconds=75)) == "1 min 15 s"
    assert format_lateness(timedelta(hours=2)) == "2 h"
    assert format_lateness(timedelta(hours=1, seconds=5)) == "1 h 5 s"


def test_the_reminder_list_shows_state_fire_time_and_lateness(staff_client, user_id):
    fire_one_late(user_id, "Fired late")
    reminded_task(user_id, title="Coming up", due=soon(hours=2), before="1h")
    response = staff_client.get("/admin/reminders/reminder/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Fired late" in body and "Coming up" in body
    assert "fired" in body and "scheduled" in body
    assert "2 min" in body  # fired about two minutes after its time
    response = staff_client.get("/admin/reminders/reminder/", {"timing": "next_hour"})
    assert "Coming up" in response.content.decode()
    assert "Fired late" not in response.content.decode()


def test_a_reminder_can_be_read_but_not_changed_added_or_deleted(staff_client, user_id):
    task = reminded_task(user_id, title="Read only", due=soon(hours=2), before="1h")
    reminder = Reminder.objects.get(task_id=task.pk)
    page = staff_client.get(f"/admin/reminders/reminder/{reminder.pk}/change/")
    assert page.status_code == 200
    assert b"Read only" in page.content and b'name="_save"' not in page.content
    posted = staff_client.post(
        f"/admin/reminders/reminder/{reminder.pk}/change/", {"state": "cancelled"}
    )
    assert posted.status_code == 403
    assert staff_client.get("/admin/reminders/reminder/add/").status_code == 403
    assert staff_client.get(f"/admin/reminders/reminder/{reminder.pk}/delete/").status_code == 403
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.SCHEDULED


def test_the_notification_list_filters_late_ones_and_stays_read_only(staff_client, user_id):
    fire_one_late(user_id, "Late one")
    [notification] = Notification.objects.filter(user_id=user_id)
    assert notification.late
    response = staff_client.get("/admin/reminders/notification/", {"late__exact": "1"})
    assert response.status_code == 200 and b"Late one" in response.content
    response = staff_client.get("/admin/reminders/notification/", {"late__exact": "0"})
    assert b"Late one" not in response.content
    response = staff_client.get("/admin/reminders/notification/", {"q": user_id})
    assert b"Late one" in response.content
    page = staff_client.get(f"/admin/reminders/notification/{notification.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert staff_client.get("/admin/reminders/notification/add/").status_code == 403


def test_reminders_due_soon_are_the_scheduled_ones_of_the_next_hour_and_the_overdue(user_id):
    now = timezone.now()
    soon_task = reminded_task(user_id, title="in 30 min", due=soon(hours=2), before="90m")
    reminded_task(user_id, title="in 3 h", due=soon(hours=4), before="1h")
    cancelled = reminded_task(user_id, title="done", due=soon(hours=2), before="90m")
    services.task_complete(user_id=user_id, task_id=cancelled.pk)
    Reminder.objects.filter(task_id=soon_task.pk).update(fire_at=now - timedelta(minutes=5))
    later = reminded_task(user_id, title="in 50 min", due=soon(hours=2), before="70m")

    due = selectors.reminders_due_soon(within=timedelta(hours=1), now=now)

    assert [reminder.task_id for reminder in due] == [soon_task.pk, later.pk]


def test_notifications_fired_late_are_the_late_ones_newest_first(user_id):
    # given one reminder fired on its time and two fired late, one after the other
    on_time = reminded_task(user_id, title="on time", due=soon(hours=1), before=timedelta(hours=1))
    first = fire_one_late(user_id, "first")
    second = fire_one_late(user_id, "second")
    assert Notification.objects.filter(task_id=on_time.pk, late=False).exists()

    late = selectors.notifications_fired_late(limit=5)

    assert [notification.task_id for notification in late] == [second.pk, first.pk]
