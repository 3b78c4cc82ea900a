"""Delete with undo: a deleted task waits in the trash for 30 days, out of every read but the
trash's, can be restored with its history and reminder, and is then purged by the retention
sweep; ``?permanent=true`` deletes at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from events.consumers import get_consumer
from events.services import events_expire
from events.tests.support import consume_all, relay_all
from reminders.models import Reminder, ReminderState
from reminders.tests.helpers import payloads
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import TRASH_RETENTION, Task
from tasks.write_guard import allow_task_writes

pytestmark = pytest.mark.django_db

TRASH = "/api/tasks/trash/"


def detail(task_id):
    return f"/api/tasks/{task_id}/"


def assert_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.json()["error"]["code"] == code or any(
        f["code"] == code for f in response.json()["error"].get("fields", [])
    )


def _trashed_days_ago(task_id, days):
    with allow_task_writes():
        Task.objects.filter(pk=task_id).update(deleted_at=timezone.now() - timedelta(days=days))


def test_a_deleted_task_goes_to_the_trash_and_out_of_every_other_read(api, user_id, make_task):
    task = make_task(title="groceries", due_date="2031-01-01T09:00:00Z")
    kept = make_task(title="groceries too")

    assert api.delete(detail(task.pk)).status_code == 204

    assert Task.objects.get(pk=task.pk).deleted_at is not None
    assert_error(api.get(detail(task.pk)), 404, "not_found")
    assert [t["id"] for t in api.get("/api/tasks/").json()["results"]] == [kept.pk]
    assert [t["id"] for t in api.get("/api/tasks/?q=groceries").json()["results"]] == [kept.pk]
    for call in (
        lambda: api.patch(detail(task.pk), {"title": "x"}, format="json"),
        lambda: api.post(f"/api/tasks/{task.pk}/complete/"),
        lambda: api.delete(detail(task.pk)),
    ):
        assert_error(call(), 404, "not_found")
    (deleted,) = payloads(user_id, "task.deleted")
    assert deleted["trashed"] is True
    assert deleted["task_data"]["deleted_at"] is not None
    assert deleted["purge_after"] is not None


def test_the_trash_lists_deleted_tasks_newest_first_with_their_purge_time(
    api, other_api, user_id, make_task
):
    first, second = make_task(title="one"), make_task(title="two")
    services.task_delete(user_id=user_id, task_id=first.pk)
    services.task_delete(user_id=user_id, task_id=second.pk)
    make_task(title="alive")

    body = api.get(TRASH).json()
    assert (body["count"], body["limit"], body["offset"]) == (2, 50, 0)
    assert [t["id"] for t in body["results"]] == [second.pk, first.pk]
    item = body["results"][0]
    deleted_at = Task.objects.get(pk=second.pk).deleted_at
    assert item["purge_after"] == (deleted_at + TRASH_RETENTION).isoformat().replace("+00:00", "Z")
    page = api.get(f"{TRASH}?limit=1&offset=1").json()
    assert (page["count"], [t["id"] for t in page["results"]]) == (2, [first.pk])
    assert other_api.get(TRASH).json()["count"] == 0
    assert_error(api.get(f"{TRASH}?limit=0"), 400, "min_value")
    assert_error(api.get(f"{TRASH}?colour=red"), 400, "unknown_parameter")


@pytest.mark.django_db(transaction=True)
def test_restore_brings_the_task_back_with_its_history(api, user_id, make_task):
    task = make_task(title="undo me")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "undo me!"})
    api.delete(detail(task.pk))

    response = api.post(f"/api/tasks/{task.pk}/restore/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["deleted_at"], body["version"]) == ("undo me!", None, 4)
    assert api.get(detail(task.pk)).status_code == 200
    assert api.get(TRASH).json()["count"] == 0
    relay_all()
    consume_all(get_consumer(AUDIT))
    history = api.get(f"/api/tasks/{task.pk}/history/").json()["results"]
    assert [entry["event_type"] for entry in history] == [
        "task.created",
        "task.updated",
        "task.deleted",
        "task.restored",
    ]
    (restored,) = payloads(user_id, "task.restored")
    assert restored["changed_fields"] == ["deleted_at"]
    assert restored["previous"]["deleted_at"] is not None


def test_restoring_a_task_not_in_the_trash_or_not_yours(api, other_api, user_id, make_task):
    task = make_task()
    assert_error(api.post(f"/api/tasks/{task.pk}/restore/"), 409, "not_in_trash")
    services.task_delete(user_id=user_id, task_id=task.pk)
    assert_error(other_api.post(f"/api/tasks/{task.pk}/restore/"), 404, "not_found")
    assert_error(api.post("/api/tasks/987654321/restore/"), 404, "not_found")
    assert payloads(user_id, "task.restored") == []


def test_a_reminder_is_cancelled_in_the_trash_and_scheduled_again_on_restore(
    api, user_id, make_task
):
    task = make_task(due_date=timezone.now() + timedelta(days=2), reminder_time="1d")
    api.delete(detail(task.pk))
    assert Reminder.objects.get(task_id=task.pk).state == ReminderState.CANCELLED

    api.post(f"/api/tasks/{task.pk}/restore/")

    reminder = Reminder.objects.get(task_id=task.pk)
    assert (reminder.state, reminder.fire_at) == (ReminderState.SCHEDULED, task.remind_at)
    assert [p["reason"] for p in payloads(user_id, "reminder.cancelled")] == ["deleted"]
    assert len(payloads(user_id, "reminder.scheduled")) == 2


def test_a_reminder_whose_time_passed_in_the_trash_is_not_scheduled_again(api, user_id, make_task):
    task = make_task(due_date=timezone.now() + timedelta(days=2), reminder_time="1d")
    api.delete(detail(task.pk))
    with allow_task_writes():
        Task.objects.filter(pk=task.pk).update(remind_at=timezone.now() - timedelta(minutes=5))

    api.post(f"/api/tasks/{task.pk}/restore/")

    assert Reminder.objects.get(task_id=task.pk).state == ReminderState.CANCELLED
    assert len(payloads(user_id, "reminder.scheduled")) == 1


def test_permanent_delete_goes_at_once(api, user_id, make_task):
    task = make_task()
    assert api.delete(f"{detail(task.pk)}?permanent=true").status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()
    (deleted,) = payloads(user_id, "task.deleted")
    assert (deleted["trashed"], deleted["purge_after"]) == (False, None)


def test_permanent_delete_of_a_task_in_the_trash_purges_it(api, user_id, make_task):
    task = make_task()
    api.delete(detail(task.pk))
    assert api.delete(f"{detail(task.pk)}?permanent=1").status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()
    assert [p["reason"] for p in payloads(user_id, "task.purged")] == ["requested"]
    assert len(payloads(user_id, "task.deleted")) == 1


@pytest.mark.parametrize("query", ["permanent=maybe", "permanent=true&permanent=false"])
def test_a_bad_permanent_flag_is_a_400(api, make_task, query):
    task = make_task()
    response = api.delete(f"{detail(task.pk)}?{query}")
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["permanent"]
    assert Task.objects.get(pk=task.pk).deleted_at is None


def test_the_retention_sweep_purges_the_trash_after_thirty_days(user_id, make_task):
    old, recent, alive = make_task(), make_task(), make_task()
    services.task_delete(user_id=user_id, task_id=old.pk)
    services.task_delete(user_id=user_id, task_id=recent.pk)
    _trashed_days_ago(old.pk, 31)
    _trashed_days_ago(recent.pk, 29)

    events_expire()

    assert set(Task.objects.filter(user_id=user_id).values_list("pk", flat=True)) == {
        recent.pk,
        alive.pk,
    }
    assert [(p["task_id"], p["reason"]) for p in payloads(user_id, "task.purged")] == [
        (old.pk, "expired")
    ]


def test_trashing_a_series_instance_with_stop_series_says_so(api, user_id, make_task):
    task = make_task(due_date="2031-01-01T09:00:00Z", recurrence_pattern="daily")
    assert api.delete(f"{detail(task.pk)}?stop_series=true").status_code == 204
    (deleted,) = payloads(user_id, "task.deleted")
    assert (deleted["stop_series"], deleted["trashed"]) == (True, True)
