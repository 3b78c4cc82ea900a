"""The recurrence consumer end to end: complete an instance through the task services, let the
consumer read ``task.completed``, and look at the next instance it created."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.locking import lock_user
from events.consumers import get_consumer
from recurrence.models import StoppedSeries
from reminders.models import Reminder, ReminderState
from reminders.tests.helpers import recorded, run_consumers
from tasks import services
from tasks.models import Priority, Task

# Consumers read committed events only.
pytestmark = pytest.mark.django_db(transaction=True)


def _series(user_id, *, due, rule, tz="UTC", **fields):
    fields.setdefault("title", "Recurring")
    return services.task_create(
        user_id=user_id, due_date=due, recurrence_pattern=rule, timezone_name=tz, **fields
    )


def _instances(task):
    """The series' instances that are not in the trash."""
    return list(
        Task.objects.filter(series_id=task.series_id, deleted_at__isnull=True).order_by("due_at")
    )


def _complete_and_next(user_id, task):
    """Complete ``task``, run the consumer, return the instance that follows it (or None)."""
    services.task_complete(user_id=user_id, task_id=task.pk)
    run_consumers("recurrence")
    return (
        Task.objects.filter(
            series_id=task.series_id, due_at__gt=task.due_at, deleted_at__isnull=True
        )
        .order_by("due_at")
        .first()
    )


def _walk(user_id, task, steps, tz):
    """Local wall-clock due times of ``task`` and the ``steps`` instances after it."""
    seen = [task.due_at.astimezone(ZoneInfo(tz))]
    for _ in range(steps):
        task = _complete_and_next(user_id, task)
        assert task is not None, f"no instance after {seen[-1]}"
        seen.append(task.due_at.astimezone(ZoneInfo(tz)))
    return seen


def _days(seen):
    return [when.strftime("%Y-%m-%d %H:%M") for when in seen]


@pytest.mark.parametrize(
    ("due", "rule", "expected"),
    [
        pytest.param(
            "2031-01-31T09:00:00",
            "monthly",
            [
                "2031-01-31 09:00",
                "2031-02-28 09:00",
                "2031-03-31 09:00",
                "2031-04-30 09:00",
                "2031-05-31 09:00",
            ],
            id="monthly-from-the-31st-keeps-to-the-month-end-without-drift",
        ),
        pytest.param(
            "2032-01-31T09:00:00",
            "monthly",
            ["2032-01-31 09:00", "2032-02-29 09:00", "2032-03-31 09:00"],
            id="monthly-from-the-31st-in-a-leap-year-goes-to-february-29",
        ),
        pytest.param(
            "2032-02-29T08:00:00",
            "yearly",
            [
                "2032-02-29 08:00",
                "2033-02-28 08:00",
                "2034-02-28 08:00",
                "2035-02-28 08:00",
                "2036-02-29 08:00",
            ],
            id="yearly-from-february-29-comes-back-to-it-in-the-next-leap-year",
        ),
        pytest.param(
            "2031-06-02T07:00:00",
            "every 2 weeks",
            ["2031-06-02 07:00", "2031-06-16 07:00", "2031-06-30 07:00"],
            id="every-second-week",
        ),
        pytest.param(
            "2031-01-31T16:00:00",
            "FREQ=MONTHLY;BYDAY=-1FR",
            ["2031-01-31 16:00", "2031-02-28 16:00", "2031-03-28 16:00"],
            id="rrule-for-the-last-friday-of-the-month",
        ),
    ],
)
def test_each_completion_creates_the_rules_next_instance(user_id, due, rule, expected):
    task = _series(user_id, due=due, rule=rule)

    assert _days(_walk(user_id, task, len(expected) - 1, "UTC")) == expected


@pytest.mark.parametrize(
    ("tz", "start", "expected_utc_hours"),
    [
        # London: clocks go forward on Sun 30 March and back on Sun 26 October 2031
        ("Europe/London", "2031-03-28T09:00:00", [9, 9, 8, 8]),
        ("Europe/London", "2031-10-24T09:00:00", [8, 8, 9, 9]),
        # New York: forward on Sun 9 March, back on Sun 2 November 2031
        ("America/New_York", "2031-03-07T09:00:00", [14, 14, 13, 13]),
        ("America/New_York", "2031-10-31T09:00:00", [13, 13, 14, 14]),
    ],
)
def test_a_daily_task_stays_at_its_wall_clock_time_across_dst(
    user_id, tz, start, expected_utc_hours
):
    task = _series(user_id, due=start, rule="daily", tz=tz)

    seen = _walk(user_id, task, 3, tz)

    assert [when.strftime("%H:%M") for when in seen] == ["09:00"] * 4
    assert [when.astimezone(UTC).hour for when in seen] == expected_utc_hours
    assert [when.date() - seen[0].date() for when in seen] == [timedelta(days=i) for i in range(4)]


def test_weekly_on_chosen_weekdays(user_id):
    task = _series(
        user_id, due="2031-06-02T18:30:00", rule={"freq": "weekly", "weekdays": ["mon", "thu"]}
    )

    seen = _walk(user_id, task, 4, "UTC")

    assert _days(seen) == [
        "2031-06-02 18:30",
        "2031-06-05 18:30",
        "2031-06-09 18:30",
        "2031-06-12 18:30",
        "2031-06-16 18:30",
    ]
    assert [when.strftime("%a") for when in seen] == ["Mon", "Thu", "Mon", "Thu", "Mon"]


def test_a_series_of_three_ends_after_its_third_occurrence(user_id):
    task = _series(user_id, due="2031-06-01T09:00:00", rule={"freq": "daily", "count": 3})
    seen = _walk(user_id, task, 2, "UTC")
    last = Task.objects.get(series_id=task.series_id, series_index=2)

    assert _complete_and_next(user_id, last) is None
    assert len(_instances(task)) == 3
    assert _days(seen) == ["2031-06-01 09:00", "2031-06-02 09:00", "2031-06-03 09:00"]


def test_a_series_until_a_date_creates_nothing_after_it(user_id):
    task = _series(
        user_id, due="2031-06-01T09:00:00", rule={"freq": "daily", "until": "2031-06-03"}
    )
    seen = _walk(user_id, task, 2, "UTC")
    last = Task.objects.get(series_id=task.series_id, due_at=seen[-1])

    assert _complete_and_next(user_id, last) is None
    assert _days(seen)[-1] == "2031-06-03 09:00"
    assert len(_instances(task)) == 3


def test_the_next_instance_carries_the_task_and_its_reminder_offset(user_id):
    task = _series(
        user_id,
        due="2031-06-02T10:00:00",
        rule="weekly",
        tz="Europe/Paris",
        title="Team sync",
        description="Agenda in the doc",
        priority="high",
        tags=["work", "Meetings"],
        reminder_time="90m",
    )

    nxt = _complete_and_next(user_id, task)

    assert nxt.title == "Team sync"
    assert nxt.description == "Agenda in the doc"
    assert nxt.priority == Priority.HIGH
    assert nxt.tags == ["work", "Meetings"]
    assert nxt.timezone == "Europe/Paris"
    assert nxt.recurrence_rule == task.recurrence_rule == "weekly"
    assert nxt.series_id == task.series_id
    assert nxt.series_anchor == task.series_anchor
    assert nxt.series_index == 1
    assert nxt.completed is False
    assert nxt.due_at == task.due_at + timedelta(weeks=1)
    assert nxt.reminder_offset == timedelta(minutes=90)
    assert nxt.remind_at == nxt.due_at - timedelta(minutes=90)
    reminder = Reminder.objects.get(task_id=nxt.pk)
    assert reminder.state == ReminderState.SCHEDULED
    assert reminder.fire_at == nxt.remind_at
    created = [e for e in recorded(user_id, "task.created") if e.payload.task_id == nxt.pk]
    assert len(created) == 1


def test_completing_a_task_that_does_not_repeat_creates_nothing(user_id):
    task = services.task_create(user_id=user_id, title="once", due_date="2031-06-02T10:00:00")

    services.task_complete(user_id=user_id, task_id=task.pk)
    run_consumers("recurrence")

    assert Task.objects.filter(user_id=user_id).count() == 1


def test_an_instance_completed_late_is_followed_by_the_first_occurrence_after_now(user_id):
    now = timezone.now()
    due = (now - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    task = _series(user_id, due=due, rule="daily")

    nxt = _complete_and_next(user_id, task)

    expected = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if expected <= now:
        expected += timedelta(days=1)
    assert nxt.due_at == expected
    assert len(_instances(task)) == 2  # no backlog of the missed days


def test_the_same_completion_delivered_twice_gives_one_next_instance(user_id):
    task = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    services.task_complete(user_id=user_id, task_id=task.pk)
    [completed] = recorded(user_id, "task.completed")
    handler = get_consumer("recurrence").handle

    for _ in range(2):
        with transaction.atomic():
            lock_user(user_id)
            handler(completed)
    run_consumers("recurrence")

    assert [t.due_at.day for t in _instances(task)] == [2, 3]


def test_completed_reopened_and_completed_again_gives_one_next_instance(user_id):
    task = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    _complete_and_next(user_id, task)
    services.task_reopen(user_id=user_id, task_id=task.pk)

    _complete_and_next(user_id, task)

    assert [t.due_at.day for t in _instances(task)] == [2, 3]
    assert len(recorded(user_id, "task.completed")) == 2


def test_an_older_instance_completed_again_creates_no_backlog(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    second = _complete_and_next(user_id, first)
    _complete_and_next(user_id, second)
    services.task_reopen(user_id=user_id, task_id=first.pk)

    _complete_and_next(user_id, first)

    assert [t.due_at.day for t in _instances(first)] == [2, 3, 4]


def test_deleting_with_stop_series_ends_the_series(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    second = _complete_and_next(user_id, first)
    services.task_delete(user_id=user_id, task_id=second.pk, stop_series=True)
    run_consumers("recurrence")
    services.task_reopen(user_id=user_id, task_id=first.pk)

    assert _complete_and_next(user_id, first) is None

    assert [t.pk for t in _instances(first)] == [first.pk]
    assert StoppedSeries.objects.filter(series_id=first.series_id, user_id=user_id).exists()


def test_deleting_for_good_without_stop_series_lets_the_series_go_on(user_id):
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    second = _complete_and_next(user_id, first)
    services.task_delete(user_id=user_id, task_id=second.pk, permanent=True)
    run_consumers("recurrence")
    services.task_reopen(user_id=user_id, task_id=first.pk)

    again = _complete_and_next(user_id, first)

    assert again is not None
    assert again.due_at == second.due_at
    assert not StoppedSeries.objects.filter(series_id=first.series_id).exists()


def test_an_instance_in_the_trash_is_not_made_again_and_comes_back_on_restore(user_id):
    # given the next instance of a series moved to the trash
    first = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    second = _complete_and_next(user_id, first)
    services.task_delete(user_id=user_id, task_id=second.pk)
    run_consumers("recurrence")
    # when the instance before it is completed again
    services.task_reopen(user_id=user_id, task_id=first.pk)
    assert _complete_and_next(user_id, first) is None
    # then no copy of it was made; restoring it brings the series back as it was
    assert Task.objects.filter(series_id=first.series_id).count() == 2
    services.task_restore(user_id=user_id, task_id=second.pk)
    assert [t.pk for t in _instances(first)] == [first.pk, second.pk]
    assert _complete_and_next(user_id, second).due_at == second.due_at + timedelta(days=1)


@pytest.mark.django_db(transaction=True)
def test_two_consumers_handling_the_same_completion_at_once_give_one_instance(user_id):
    task = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    services.task_complete(user_id=user_id, task_id=task.pk)
    [completed] = recorded(user_id, "task.completed")
    handler = get_consumer("recurrence").handle
    start = threading.Barrier(2)
    errors = []

    def consume():
        try:
            start.wait()
            with transaction.atomic():
                lock_user(user_id)
                handler(completed)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert [t.due_at for t in _instances(task)] == [
        datetime(2031, 6, 2, 10, tzinfo=UTC),
        datetime(2031, 6, 3, 10, tzinfo=UTC),
    ]


def test_a_stored_rule_that_cannot_be_expanded_ends_the_series_without_a_dead_letter(
    user_id, caplog
):
    """Regression: a rule stored as FREQ=DAILY;UNTIL=10101 made the consumer fail on every
    attempt until the completion was dead-lettered."""
    from events.models import DeadLetter

    task = _series(user_id, due="2031-06-02T10:00:00", rule="daily")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tasks_task SET recurrence_rule = %s WHERE id = %s",
            ["FREQ=DAILY;UNTIL=10101", task.pk],
        )

    with caplog.at_level("WARNING", logger="recurrence.services"):
        nxt = _complete_and_next(user_id, task)

    assert nxt is None
    assert list(_instances(task)) == [Task.objects.get(pk=task.pk)]
    assert not DeadLetter.objects.filter(consumer="recurrence").exists()
    [warning] = [r for r in caplog.records if r.name == "recurrence.services"]
    assert "cannot be expanded" in warning.getMessage()
    assert "FREQ=DAILY;UNTIL=10101" in warning.getMessage()
