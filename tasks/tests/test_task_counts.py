"""Each user's count of tasks outside the trash and of open ones (``TaskCount``) is kept by
triggers through every kind of change, and a list of all or of the open tasks reports it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from tasks import services
from tasks.models import OPEN, Task, TaskCount

pytestmark = pytest.mark.django_db


def _counted(user_id: str) -> tuple[int, int]:
    """The counts as the triggers keep them: (live, open)."""
    row = TaskCount.objects.filter(user_id=user_id).values_list("live", "open").first()
    return row or (0, 0)


def _actual(user_id: str) -> tuple[int, int]:
    live = Task.objects.filter(user_id=user_id, deleted_at__isnull=True)
    return live.count(), live.filter(OPEN).count()


def test_every_kind_of_change_keeps_the_counts(user_id, other_user_id, make_task):
    def check() -> None:
        assert _counted(user_id) == _actual(user_id)
        assert _counted(other_user_id) == _actual(other_user_id)

    first, second, third = (make_task(title=f"t{i}") for i in range(3))
    make_task(title="theirs", user_id=other_user_id)
    check()
    services.task_create_many(user_id=user_id, items=[{"title": "bulk one"}, {"title": "bulk two"}])
    check()
    services.task_update(user_id=user_id, task_id=first.pk, changes={"title": "renamed"})
    assert _counted(user_id) == (5, 5)
    services.task_complete(user_id=user_id, task_id=first.pk)
    check()
    services.task_reopen(user_id=user_id, task_id=first.pk)
    check()
    services.task_complete(user_id=user_id, task_id=first.pk)
    weekly = make_task(title="weekly", due_date="2031-01-06T09:00:00Z", recurrence_pattern="weekly")
    services.task_skip(user_id=user_id, task_id=weekly.pk)
    check()
    services.task_delete(user_id=user_id, task_id=second.pk)  # to the trash
    check()
    services.task_delete(user_id=user_id, task_id=first.pk)  # a done one to the trash
    check()
    services.task_restore(user_id=user_id, task_id=second.pk)
    check()
    services.task_delete(user_id=user_id, task_id=third.pk, permanent=True)
    check()
    assert services.task_trash_purge(older_than=timedelta(0)) == 1  # the done one
    check()
    assert _counted(other_user_id) == (1, 1)


def test_a_statement_over_many_users_counts_each_of_them(user_id, other_user_id, make_task):
    # given open tasks of two users
    for owner in (user_id, other_user_id, user_id):
        make_task(title="open", user_id=owner)

    # when one statement closes all of them (as an operator's SQL would)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET completed = true, completed_at = now() WHERE user_id IN (%s, %s)",
            [user_id, other_user_id],
        )

    # then each user's open count went down by their own tasks
    assert _counted(user_id) == (2, 0) and _counted(other_user_id) == (1, 0)


def test_the_list_of_all_and_of_open_tasks_reports_the_kept_count(api, user_id, make_task):
    for i in range(3):
        make_task(title=f"t{i}")
    done = make_task(title="done")
    services.task_complete(user_id=user_id, task_id=done.pk)

    pending = api.get("/api/tasks/", {"status": "pending", "limit": 1}).json()
    everything = api.get("/api/tasks/", {"limit": 1}).json()
    filtered = api.get("/api/tasks/", {"status": "pending", "priority": "medium"}).json()

    assert (pending["count"], everything["count"], filtered["count"]) == (3, 4, 3)
    assert _counted(user_id) == (4, 3)

    # and the totals are the kept ones (here made to differ), while a list with another filter
    # counts its tasks
    TaskCount.objects.filter(user_id=user_id).update(live=40, open=30)
    totals = [
        api.get("/api/tasks/", query).json()["count"]
        for query in ({"status": "pending"}, {}, {"status": "pending", "priority": "medium"})
    ]
    assert totals == [30, 40, 3]


def test_a_user_without_tasks_lists_none(api):
    body = api.get("/api/tasks/", {"status": "pending"}).json()

    assert (body["count"], body["results"]) == (0, [])


def test_recount_corrects_counts_written_around_the_triggers(user_id, other_user_id, make_task):
    # given counts that are off: one too many, one missing, one for a user without tasks
    from io import StringIO

    from django.core.management import call_command

    make_task(title="mine")
    make_task(title="theirs", user_id=other_user_id)
    TaskCount.objects.filter(user_id=user_id).update(open=5)
    TaskCount.objects.filter(user_id=other_user_id).delete()
    TaskCount.objects.create(user_id="nobody-now", live=3, open=1)

    # when the counts are recounted
    out = StringIO()
    call_command("recount_tasks", stdout=out)

    # then each is what the tasks say, and the command names the users it corrected
    assert _counted(user_id) == (1, 1) and _counted(other_user_id) == (1, 1)
    assert _counted("nobody-now") == (0, 0)
    assert sorted(out.getvalue().split()[-3:]) == sorted(["nobody-now", other_user_id, user_id])
    out = StringIO()
    call_command("recount_tasks", stdout=out)
    assert out.getvalue() == "Every user's task counts were right.\n"
