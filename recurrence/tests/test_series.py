"""Series people steer: skip an occurrence, move one occurrence or the whole series, repeat from
completion, and the occurrences the API lists, all through the real services, events and the
recurrence consumer, on the wall clock of the task's zone (month ends, DST)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from reminders.tests.helpers import recorded, run_consumers
from tasks import services
from tasks.models import Task

# Consumers read committed events only.
pytestmark = pytest.mark.django_db(transaction=True)


def _series(user_id, *, due, rule, tz, **fields):
    fields.setdefault("title", "Recurring")
    return services.task_create(
        user_id=user_id, due_date=due, recurrence_pattern=rule, timezone_name=tz, **fields
    )


def _local(task, tz):
    return task.due_at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")


def _latest(task):
    """The series' newest instance (instances are created one after another)."""
    return Task.objects.filter(series_id=task.series_id).order_by("-pk").first()


def _skip(user_id, task):
    services.task_skip(user_id=user_id, task_id=task.pk)
    run_consumers("recurrence")
    return _latest(task)


def _complete(user_id, task):
    services.task_complete(user_id=user_id, task_id=task.pk)
    run_consumers("recurrence")
    return _latest(task)


def _occurrences(api, task, count=4):
    response = api.get(f"/api/tasks/{task.pk}/occurrences/?count={count}")
    assert response.status_code == 200, response.content
    return [item["due"] for item in response.json()["results"]]


def test_month_end_series_with_a_skip_and_one_occurrence_moved(api, user_id):
    tz = "Europe/Berlin"
    jan = _series(user_id, due="2031-01-31T09:00:00", rule="monthly", tz=tz)

    # skipping January's occurrence goes on to February's last day, January stays not done
    feb = _skip(user_id, jan)
    jan.refresh_from_db()
    assert (jan.completed, jan.skipped_at is not None) == (False, True)
    assert _local(feb, tz) == "2031-02-28 09:00 +0100"
    assert [e.event_type for e in recorded(user_id, "task.skipped")] == ["task.skipped"]

    # moving February's occurrence alone to March 3 keeps the series on the month ends
    response = api.patch(
        f"/api/tasks/{feb.pk}/", {"due_date": "2031-03-03T09:00:00"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert _occurrences(api, feb) == [
        "2031-03-03T09:00:00+01:00",
        "2031-03-31T09:00:00+02:00",
        "2031-04-30T09:00:00+02:00",
        "2031-05-31T09:00:00+02:00",
    ]
    mar = _complete(user_id, Task.objects.get(pk=feb.pk))
    assert _local(mar, tz) == "2031-03-31 09:00 +0200"
    assert (mar.series_index, mar.series_anchor) == (2, jan.series_anchor)

    # skipping twice makes no second instance
    services.task_skip(user_id=user_id, task_id=jan.pk)
    run_consumers("recurrence")
    assert Task.objects.filter(series_id=jan.series_id).count() == 3


def test_berlin_daily_series_keeps_nine_oclock_across_dst_with_a_skip_and_a_move(api, user_id):
    tz = "Europe/Berlin"  # clocks go forward on 2031-03-30
    first = _series(user_id, due="2031-03-28T09:00:00", rule="daily", tz=tz)

    second = _skip(user_id, first)
    assert _local(second, tz) == "2031-03-29 09:00 +0100"

    # this evening instead, for this one occurrence only
    services.task_update(
        user_id=user_id, task_id=second.pk, changes={"due_date": "2031-03-29T18:00:00"}
    )
    assert _occurrences(api, second, 3) == [
        "2031-03-29T18:00:00+01:00",
        "2031-03-30T09:00:00+02:00",
        "2031-03-31T09:00:00+02:00",
    ]
    third = _complete(user_id, Task.objects.get(pk=second.pk))
    assert _local(third, tz) == "2031-03-30 09:00 +0200"
    assert third.due_at == datetime(2031, 3, 30, 7, 0, tzinfo=UTC)


def test_new_york_weekly_series_moved_as_a_whole_across_dst(api, user_id):
    tz = "America/New_York"  # clocks go forward on 2031-03-09
    monday = _series(user_id, due="2031-03-03T08:30:00", rule="weekly", tz=tz)

    after_dst = _skip(user_id, monday)
    assert _local(after_dst, tz) == "2031-03-10 08:30 -0400"

    # the series moves to Tuesdays from this occurrence on
    response = api.patch(
        f"/api/tasks/{after_dst.pk}/",
        {"due_date": "2031-03-11T08:30:00", "apply_to": "series"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert _occurrences(api, after_dst, 3) == [
        "2031-03-11T08:30:00-04:00",
        "2031-03-18T08:30:00-04:00",
        "2031-03-25T08:30:00-04:00",
    ]
    following = _complete(user_id, Task.objects.get(pk=after_dst.pk))
    assert _local(following, tz) == "2031-03-18 08:30 -0400"
    assert following.series_index == 2


def test_one_occurrence_moved_past_the_next_keeps_the_series_on_its_rule(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily", tz="UTC")
    # moved onto the next occurrence's own time: the series goes on from there, without a clash
    services.task_update(
        user_id=user_id, task_id=first.pk, changes={"due_date": "2031-06-03T10:00:00"}
    )
    following = _complete(user_id, first)
    assert following.due_at == datetime(2031, 6, 4, 10, 0, tzinfo=UTC)


def test_repeat_from_completion_counts_from_the_day_done_at_the_due_time_across_dst(
    user_id, monkeypatch
):
    tz = "Europe/Berlin"
    task = _series(
        user_id, due="2031-03-25T09:00:00", rule="every 3 days", tz=tz, repeat_from="completion"
    )
    # done late in the evening of March 29 (CET), the day before the clocks go forward
    done_at = datetime(2031, 3, 29, 21, 30, tzinfo=ZoneInfo(tz))
    with monkeypatch.context() as patched:
        patched.setattr(timezone, "now", lambda: done_at.astimezone(UTC))
        services.task_complete(user_id=user_id, task_id=task.pk)
    run_consumers("recurrence")

    following = _latest(task)
    # three days after March 29, at nine on the wall clock, now in summer time
    assert _local(following, tz) == "2031-04-01 09:00 +0200"
    assert (following.repeat_from, following.series_index) == ("completion", 1)


def test_repeat_from_due_is_the_default_and_ignores_when_it_was_done(user_id):
    task = _series(user_id, due="2031-03-25T09:00:00", rule="every 3 days", tz="Europe/Berlin")
    following = _complete(user_id, task)
    assert task.repeat_from == "due"
    assert _local(following, "Europe/Berlin") == "2031-03-28 09:00 +0100"


def test_reopening_a_done_occurrence_and_completing_it_again_makes_nothing_new(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily", tz="UTC")
    second = _complete(user_id, first)

    services.task_reopen(user_id=user_id, task_id=first.pk)
    run_consumers("recurrence")
    # the next instance is still there, once
    assert list(Task.objects.filter(series_id=first.series_id).order_by("pk")) == [first, second]

    services.task_complete(user_id=user_id, task_id=first.pk)
    run_consumers("recurrence")
    assert Task.objects.filter(series_id=first.series_id).count() == 2
    second.refresh_from_db()
    assert not second.completed and second.deleted_at is None


def test_a_skipped_occurrence_set_back_to_pending_keeps_the_next_one(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily", tz="UTC")
    _skip(user_id, first)

    services.task_reopen(user_id=user_id, task_id=first.pk)
    first.refresh_from_db()
    assert first.skipped_at is None and not first.completed
    services.task_complete(user_id=user_id, task_id=first.pk)
    run_consumers("recurrence")

    assert Task.objects.filter(series_id=first.series_id).count() == 2
    assert [e.event_type for e in recorded(user_id) if e.event_type.startswith("task.")] == [
        "task.created",
        "task.skipped",
        "task.created",
        "task.reopened",
        "task.completed",
    ]


def test_count_ends_the_series_even_when_it_was_moved(api, user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="FREQ=DAILY;COUNT=3", tz="UTC")
    second = _complete(user_id, first)
    services.task_update(
        user_id=user_id,
        task_id=second.pk,
        changes={"due_date": "2031-06-03T15:00:00"},
        apply_to="series",
    )
    assert _occurrences(api, second, 10) == [
        "2031-06-03T15:00:00+00:00",
        "2031-06-04T15:00:00+00:00",
    ]
    third = _complete(user_id, Task.objects.get(pk=second.pk))
    assert third.series_index == 2
    assert _complete(user_id, third).pk == third.pk  # no fourth
