from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from events.actors import acting_as
from events.schemas import Actor
from tasks import services
from tasks.errors import TaskConflict, TaskNotFound, TaskValidationError, VersionConflict
from tasks.models import Priority, Task
from tasks.signals import task_changed
from tasks.write_guard import TaskWriteOutsideServices

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    changes = []

    def receiver(sender, change, **kwargs):
        changes.append(change)

    task_changed.connect(receiver)
    yield changes
    task_changed.disconnect(receiver)


def test_create_cleans_fields_and_announces_once(user_id, announced):
    task = services.task_create(
        user_id=user_id,
        title="  Buy milk ",
        priority="high",
        tags=[" Home ", "home", "errand"],
        due_date="2030-01-05T09:00:00",
        timezone_name="Europe/London",
        reminder_time="1h",
    )
    task.refresh_from_db()
    assert task.title == "Buy milk"
    assert task.priority == Priority.HIGH
    assert task.tags == ["Home", "errand"]
    assert task.due_at.isoformat() == "2030-01-05T09:00:00+00:00"
    assert task.remind_at == task.due_at - timedelta(hours=1)
    assert [c.action for c in announced] == ["created"]
    assert announced[0].snapshot["id"] == task.pk
    assert announced[0].snapshot["reminder_time"] == "1h"


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"title": ""}, "title", "blank"),
        ({"title": "x" * 201}, "title", "max_length"),
        ({"description": "x" * 2001}, "description", "max_length"),
        ({"priority": "critical"}, "priority", "invalid_choice"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags", "too_many"),
        ({"tags": ["x" * 51]}, "tags", "max_length"),
        ({"tags": [""]}, "tags", "blank"),
        ({"due_date": "next tuesday"}, "due_date", "invalid_datetime"),
        ({"reminder_time": "1h"}, "reminder_time", "due_date_required"),
        ({"recurrence_pattern": "fortnightly"}, "recurrence_pattern", None),
        ({"recurrence_pattern": "daily"}, "due_date", "due_date_required"),
        ({"timezone_name": "Mars/Olympus"}, "timezone", "invalid_timezone"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(user_id, announced, fields, field, code):
    fields.setdefault("title", "ok")
    with pytest.raises(TaskValidationError) as info:
        services.task_create(user_id=user_id, **fields)
    assert info.value.field == field
    if code:
        assert info.value.code == code
    assert not Task.objects.filter(user_id=user_id).exists()
    assert announced == []


def test_reminder_in_the_past_is_refused_unless_task_is_overdue(user_id):
    soon = timezone.now() + timedelta(minutes=30)
    with pytest.raises(TaskValidationError) as info:
        services.task_create(user_id=user_id, title="t", due_date=soon, reminder_time="1h")
    assert info.value.code == "in_past"
    overdue = timezone.now() - timedelta(days=1)
    task = services.task_create(user_id=user_id, title="t", due_date=overdue, reminder_time="1h")
    assert task.remind_at == overdue - timedelta(hours=1)


def test_update_changes_only_given_fields_and_bumps_version(make_task, user_id, announced):
    task = make_task(title="old", tags=["a"])
    announced.clear()
    updated, changed = services.task_update(
        user_id=user_id, task_id=task.pk, changes={"title": "new", "tags": ["a"]}
    )
    assert changed == ("title",)
    assert updated.version == 2
    assert announced[0].action == "updated"
    assert announced[0].changed_fields == ("title",)
    assert announced[0].previous == {"title": "old"}


def test_update_that_changes_nothing_announces_nothing(make_task, user_id, announced):
    task = make_task(title="same")
    announced.clear()
    _, changed = services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "same"})
    assert changed == ()
    assert announced == []
    task.refresh_from_db()
    assert task.version == 1


def test_moving_due_date_moves_a_relative_reminder(make_task, user_id):
    due = timezone.now() + timedelta(days=2)
    task = make_task(due_date=due, reminder_time="2h")
    later = due + timedelta(days=1)
    task, changed = services.task_update(
        user_id=user_id, task_id=task.pk, changes={"due_date": later}
    )
    assert task.remind_at == later - timedelta(hours=2)
    assert set(changed) == {"due_date", "remind_at"}


def test_stale_version_is_a_conflict(make_task, user_id):
    task = make_task()
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "v2"})
    with pytest.raises(VersionConflict):
        services.task_update(
            user_id=user_id, task_id=task.pk, changes={"title": "v3"}, expected_version=1
        )
    task.refresh_from_db()
    assert task.title == "v2"


def test_complete_and_reopen(make_task, user_id, announced):
    task = make_task()
    announced.clear()
    done = services.task_complete(user_id=user_id, task_id=task.pk)
    assert done.completed and done.completed_at is not None
    again = services.task_complete(user_id=user_id, task_id=task.pk)
    assert again.version == done.version  # completing twice changes nothing
    reopened = services.task_reopen(user_id=user_id, task_id=task.pk)
    assert not reopened.completed and reopened.completed_at is None
    assert [c.action for c in announced] == ["completed", "reopened"]


def test_delete_returns_snapshot_and_announces(make_task, user_id, announced):
    task = make_task(title="bye")
    announced.clear()
    snapshot = services.task_delete(user_id=user_id, task_id=task.pk, stop_series=True)
    assert snapshot["title"] == "bye"
    # the row stays, in the trash
    assert Task.objects.get(pk=task.pk).deleted_at is not None
    assert snapshot["deleted_at"] is not None
    assert announced[0].action == "deleted"
    assert announced[0].options == {"stop_series": True, "trashed": True}


def test_permanent_delete_removes_the_row(make_task, user_id, announced):
    task = make_task(title="bye")
    announced.clear()
    snapshot = services.task_delete(user_id=user_id, task_id=task.pk, permanent=True)
    assert snapshot["deleted_at"] is None
    assert not Task.objects.filter(pk=task.pk).exists()
    assert [(c.action, c.options) for c in announced] == [
        ("deleted", {"stop_series": False, "trashed": False})
    ]


def test_another_users_task_is_not_found(make_task, other_user_id):
    task = make_task()
    for call in (
        lambda: services.task_update(
            user_id=other_user_id, task_id=task.pk, changes={"title": "x"}
        ),
        lambda: services.task_complete(user_id=other_user_id, task_id=task.pk),
        lambda: services.task_reopen(user_id=other_user_id, task_id=task.pk),
        lambda: services.task_delete(user_id=other_user_id, task_id=task.pk),
    ):
        with pytest.raises(TaskNotFound):
            call()
    task.refresh_from_db()
    assert task.title == "A task" and not task.completed


def test_a_failing_receiver_rolls_the_change_back(user_id):
    def explode(sender, change, **kwargs):
        raise RuntimeError("event store down")

    task_changed.connect(explode)
    try:
        with pytest.raises(RuntimeError):
            services.task_create(user_id=user_id, title="never")
    finally:
        task_changed.disconnect(explode)
    assert not Task.objects.filter(user_id=user_id).exists()


def test_second_instance_with_same_series_and_due_is_refused(make_task, user_id):
    due = timezone.now() + timedelta(days=1)
    first = make_task(due_date=due, recurrence_pattern="daily")
    with pytest.raises(TaskConflict) as info:
        services.task_create(
            user_id=user_id,
            title="again",
            due_date=due,
            recurrence_pattern="daily",
            series_id=first.series_id,
            series_anchor=first.series_anchor,
            series_index=0,
        )
    assert info.value.code == "duplicate_instance"
    assert Task.objects.filter(series_id=first.series_id).count() == 1


def test_writes_outside_services_are_refused(make_task):
    task = make_task()
    with pytest.raises(TaskWriteOutsideServices):
        task.save()
    with pytest.raises(TaskWriteOutsideServices):
        Task.objects.filter(pk=task.pk).update(title="sneaky")
    with pytest.raises(TaskWriteOutsideServices):
        Task.objects.create(user_id="x", title="sneaky")
    with pytest.raises(TaskWriteOutsideServices):
        Task.objects.filter(pk=task.pk).delete()


def test_database_refuses_changing_the_owner(make_task):
    task = make_task()
    with (
        pytest.raises(Exception, match=r"read.only|user_id"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE tasks_task SET user_id = 'thief' WHERE id = %s", [task.pk])
    task.refresh_from_db()
    assert task.user_id != "thief"


def test_database_refuses_bad_priority_and_too_many_tags(make_task):
    task = make_task()
    with (
        pytest.raises(Exception, match="task_priority_valid"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE tasks_task SET priority = 9 WHERE id = %s", [task.pk])
    many = "[" + ",".join(f'"t{i}"' for i in range(21)) + "]"
    with (
        pytest.raises(Exception, match="at most 20 tags"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE tasks_task SET tags = %s::jsonb WHERE id = %s", [many, task.pk])


def test_search_vector_is_maintained_by_the_database(make_task, user_id):
    task = make_task(title="Quarterly report", description="numbers", tags=["finance"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_vector::text FROM tasks_task WHERE id = %s", [task.pk])
        vector = cursor.fetchone()[0]
    # each word as written (accent-free) and as stemmed, weighted by where it is
    assert "'quarterly':1A" in vector and "'quarter':3A" in vector
    assert "'numbers':5B" in vector and "'number':6B" in vector
    assert "'financ':" in vector and "C" in vector.split("'financ':")[1][:4]


def test_a_bare_due_date_means_the_end_of_that_day_in_the_tasks_zone(user_id):
    task = services.task_create(
        user_id=user_id, title="t", due_date="2031-01-01", timezone_name="America/New_York"
    )
    assert task.due_at.isoformat() == "2031-01-02T04:59:59+00:00"


def test_undo_of_a_skip_sets_the_occurrence_back_to_pending(user_id):
    # given an occurrence of a series that one token skipped
    task = services.task_create(
        user_id=user_id,
        title="Water the plants",
        due_date="2031-06-02T10:00:00",
        recurrence_pattern="daily",
    )
    with acting_as(Actor(surface="rest", token_id="token-1")):
        services.task_skip(user_id=user_id, task_id=task.pk)
        # when the same token undoes its latest change
        undone = services.task_undo(user_id=user_id, task_id=task.pk, token_id="token-1")
    # then the occurrence is pending again, by a new change that names the skip
    assert (undone.undone_event_type, undone.action) == ("task.skipped", "reverted")
    task.refresh_from_db()
    assert (task.completed, task.completed_at, task.skipped_at) == (False, None, None)
    assert task.version == 3
