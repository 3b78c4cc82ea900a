"""The operators' overview page in the admin, through Django's test client as a staff user."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from events import health
from events.consumers import all_consumers
from events.services import dead_letter_record
from reminders.scheduler import ReminderScheduler
from reminders.tests.helpers import run_consumers, soon
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)

OVERVIEW = "/admin/overview/"


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def fresh_positions():
    health.forget_positions()
    yield
    health.forget_positions()


def test_the_admin_index_links_the_overview(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert f'href="{OVERVIEW}"'.encode() in response.content


def test_the_overview_needs_a_staff_login(client):
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(User.objects.create_user("someone", password="a-long-password-1"))
    assert client.get(OVERVIEW).status_code == 302


def test_the_overview_shows_consumers_relay_dead_letters_and_reminders(staff_client, user_id):
    # given a reminder that fired late, one due within the hour, one due later, and a dead letter
    services.task_create(
        user_id=user_id,
        title="Fired late",
        due_date=soon(hours=1),
        reminder_time=timedelta(minutes=62),
        check_reminder_in_past=False,
    )
    ReminderScheduler().fire_due()
    run_consumers("notifications")
    services.task_create(
        user_id=user_id, title="Due within the hour", due_date=soon(hours=2), reminder_time="90m"
    )
    services.task_create(
        user_id=user_id, title="Due tomorrow", due_date=soon(days=1), reminder_time="1h"
    )
    dead_letter_record(consumer="recurrence", topic="task-events", error="boom", attempts=5)

    # when the operator opens the overview
    response = staff_client.get(OVERVIEW)

    # then every consumer has its line, with its lag and its last event
    assert response.status_code == 200
    body = response.content.decode()
    context = response.context
    names = [row.name for row in context["consumers"]]
    assert names == [consumer.name for consumer in all_consumers()]
    assert {"audit", "notifications", "recurrence", "realtime"} <= set(names)
    notifications = next(row for row in context["consumers"] if row.name == "notifications")
    assert notifications.last_event_at is not None and notifications.lag is not None
    audit = next(row for row in context["consumers"] if row.name == "audit")
    assert audit.last_event_at is None and audit.lag == 3  # nothing ran the audit consumer
    assert audit.lag > notifications.lag
    # the relay's backlog and the dead letters of the last day
    assert 'id="relay"' in body and "waiting to be published" in body
    assert context["dead_letters_24h_total"] == 1
    assert "1 in the last 24 hours" in body
    # the reminders about to fire, and the one that fired late with its lateness
    assert "Due within the hour" in body and "Due tomorrow" not in body
    [(late, late_by)] = context["fired_late"]
    assert late.title == "Fired late" and late_by.startswith("2 min")
    assert "Fired late" in body
