"""The notification consumer and the user's inbox."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from core.locking import lock_user
from events.consumers import get_consumer
from reminders.models import Notification
from reminders.scheduler import ReminderScheduler
from reminders.tests.helpers import payloads, recorded, run_consumers, soon
from tasks import services

# Consumers read committed events only.
pytestmark = pytest.mark.django_db(transaction=True)


def _fire_reminders(user_id, count=1, *, title="Pay rent"):
    tasks = [
        services.task_create(
            user_id=user_id,
            title=f"{title} {i}" if count > 1 else title,
            due_date=soon(hours=1),
            reminder_time=timedelta(hours=1, minutes=1),
            check_reminder_in_past=False,
        )
        for i in range(count)
    ]
    ReminderScheduler().fire_due()
    return tasks


def _deliver(envelope):
    """Hand one envelope to the notifications consumer as the framework does."""
    with transaction.atomic():
        lock_user(envelope.user_id)
        get_consumer("notifications").handle(envelope)


def test_a_fired_reminder_becomes_one_notification_in_its_owners_inbox(user_id, api):
    [task] = _fire_reminders(user_id)

    run_consumers("notifications")

    [notification] = Notification.objects.filter(user_id=user_id)
    assert notification.task_id == task.pk
    assert notification.title == "Pay rent"
    assert notification.read_at is None
    [created] = payloads(user_id, "notification.created")
    assert created["notification_id"] == notification.pk
    assert created["notification"]["task_id"] == task.pk
    body = api.get("/api/notifications/").json()
    assert body["count"] == 1
    assert body["results"][0]["id"] == notification.pk
    assert body["results"][0]["remind_at"] == created["notification"]["remind_at"]


def test_the_same_trigger_delivered_twice_gives_one_notification(user_id):
    _fire_reminders(user_id)
    [envelope] = recorded(user_id, "reminder.triggered")

    _deliver(envelope)
    _deliver(envelope)
    _deliver(envelope.model_copy(update={"event_id": uuid.uuid4()}))  # the same firing, re-sent

    assert Notification.objects.filter(user_id=user_id).count() == 1
    assert len(payloads(user_id, "notification.created")) == 1


def test_a_batch_of_triggers_gives_one_notification_per_firing(user_id, other_user_id):
    _fire_reminders(user_id, count=3)
    _fire_reminders(other_user_id, count=2, title="Call")
    mine = recorded(user_id, "reminder.triggered")
    theirs = recorded(other_user_id, "reminder.triggered")
    resent = mine[0].model_copy(update={"event_id": uuid.uuid4()})  # the same firing again
    stranger = theirs[0].model_copy(update={"user_id": user_id})  # not this user's reminder

    with transaction.atomic():
        get_consumer("notifications").handle_batch([*mine, *theirs, resent, stranger])

    assert Notification.objects.filter(user_id=user_id).count() == 3
    assert Notification.objects.filter(user_id=other_user_id).count() == 2
    created = payloads(user_id, "notification.created")
    assert sorted(p["notification"]["task_id"] for p in created) == sorted(
        e.payload.task_id for e in mine
    )
    assert len(payloads(other_user_id, "notification.created")) == 2


def test_a_reminder_for_another_users_task_never_reaches_this_user(
    user_id, other_user_id, other_api
):
    _fire_reminders(user_id)
    [envelope] = recorded(user_id, "reminder.triggered")

    # a trigger naming this user but another user's reminder (a forged or misrouted message)
    _deliver(envelope.model_copy(update={"user_id": other_user_id}))
    run_consumers("notifications")

    assert not Notification.objects.filter(user_id=other_user_id).exists()
    assert recorded(other_user_id, "notification.created") == []
    assert other_api.get("/api/notifications/").json()["count"] == 0
    assert Notification.objects.filter(user_id=user_id).count() == 1


def test_the_inbox_pages_newest_first_with_a_total(user_id, api):
    _fire_reminders(user_id, 5)
    run_consumers("notifications")
    ids = list(
        Notification.objects.filter(user_id=user_id)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )

    first = api.get("/api/notifications/?limit=2").json()
    last = api.get("/api/notifications/?limit=2&offset=4").json()

    assert [n["id"] for n in first["results"]] == ids[:2]
    assert (first["count"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [n["id"] for n in last["results"]] == ids[4:]
    assert last["count"] == 5


def test_reading_marks_read_once_and_the_unread_filter_follows(user_id, api):
    _fire_reminders(user_id, 2)
    run_consumers("notifications")
    first, second = Notification.objects.filter(user_id=user_id).order_by("pk")

    response = api.post(f"/api/notifications/{first.pk}/read/")
    again = api.post(f"/api/notifications/{first.pk}/read/")

    assert response.status_code == 200
    assert response.json()["read_at"] is not None
    assert again.json()["read_at"] == response.json()["read_at"]
    assert [p["notification_id"] for p in payloads(user_id, "notification.read")] == [first.pk]
    unread = api.get("/api/notifications/?unread=true").json()
    read = api.get("/api/notifications/?unread=false").json()
    assert [n["id"] for n in unread["results"]] == [second.pk]
    assert [n["id"] for n in read["results"]] == [first.pk]


def test_dismissing_takes_it_out_of_the_inbox_and_records_one_event(user_id, api):
    _fire_reminders(user_id)
    run_consumers("notifications")
    [notification] = Notification.objects.filter(user_id=user_id)

    response = api.post(f"/api/notifications/{notification.pk}/dismiss/")
    api.post(f"/api/notifications/{notification.pk}/dismiss/")

    assert response.status_code == 200
    assert response.json()["dismissed_at"] is not None
    assert response.json()["read_at"] is not None
    assert api.get("/api/notifications/").json()["count"] == 0
    assert len(payloads(user_id, "notification.dismissed")) == 1


@pytest.mark.parametrize("action", ["read", "dismiss"])
def test_another_users_notification_is_not_found_and_unchanged(user_id, other_api, action):
    _fire_reminders(user_id)
    run_consumers("notifications")
    [notification] = Notification.objects.filter(user_id=user_id)

    response = other_api.post(f"/api/notifications/{notification.pk}/{action}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    notification.refresh_from_db()
    assert notification.read_at is None
    assert notification.dismissed_at is None
    assert payloads(user_id, f"notification.{'read' if action == 'read' else 'dismissed'}") == []


def test_a_missing_notification_is_not_found(api):
    assert api.post("/api/notifications/999999999/read/").status_code == 404


def test_the_inbox_needs_a_token_and_refuses_unknown_parameters(api):
    assert APIClient().get("/api/notifications/").status_code == 401
    bad = api.get("/api/notifications/?status=unread")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "unknown_parameter"
    assert api.get("/api/notifications/?limit=0").status_code == 400
