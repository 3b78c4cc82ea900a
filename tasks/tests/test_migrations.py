"""Data migrations, run for real: the schema is taken back to the migration before, rows are
written with SQL as the old code left them, and the migration is applied."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from tasks import services
from tasks.models import Task, TaskHistory
from tasks.recurrence_rules import parse_rule, rule_to_text

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("tasks", "0002_search_lexicon")
REPAIR = ("tasks", "0003_repair_recurrence_until")


def _migrate(*targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


def _insert(user_id: str, rule: str, anchor: datetime, tz_name: str = "UTC") -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task (user_id, title, description, completed, priority, tags, "
            "due_at, recurrence_rule, series_id, series_anchor, series_index, timezone, "
            "created_at, updated_at, version) "
            "VALUES (%s, 'stored', '', false, 2, '[]'::jsonb, %s, %s, %s, %s, 0, %s, now(), "
            "now(), 1) RETURNING id",
            [user_id, anchor, rule, uuid.uuid4(), anchor, tz_name],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def before_the_repair():
    _migrate(BEFORE)
    yield
    _migrate()


def test_the_repair_pads_short_years_and_ends_series_whose_until_is_before_their_start(
    before_the_repair, user_id
):
    june_1 = datetime(2031, 6, 1, 9, tzinfo=UTC)
    # New York's June 1, 01:00 UTC is May 31 there: UNTIL on May 31 ends on the first due date.
    late_may_31 = datetime(2031, 6, 1, 1, tzinfo=UTC)
    stored = {
        "year_1": (_insert(user_id, "FREQ=DAILY;UNTIL=10101", june_1), "FREQ=DAILY;COUNT=1"),
        "year_999": (
            _insert(user_id, "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=9991231", june_1),
            "FREQ=MONTHLY;BYDAY=-1FR;COUNT=1",
        ),
        "the_day_before": (
            _insert(user_id, "FREQ=WEEKLY;INTERVAL=2;UNTIL=20310531", june_1),
            "FREQ=WEEKLY;INTERVAL=2;COUNT=1",
        ),
        "later": (
            _insert(user_id, "FREQ=DAILY;UNTIL=20310610", june_1),
            "FREQ=DAILY;UNTIL=20310610",
        ),
        "the_same_local_day": (
            _insert(user_id, "FREQ=DAILY;UNTIL=20310531", late_may_31, "America/New_York"),
            "FREQ=DAILY;UNTIL=20310531",
        ),
        "no_until": (_insert(user_id, "FREQ=DAILY;COUNT=3", june_1), "FREQ=DAILY;COUNT=3"),
        "a_word": (_insert(user_id, "weekly", june_1), "weekly"),
    }

    _migrate(REPAIR)

    # Only the columns of that migration's time: later ones do not exist yet.
    stored_rows = Task.objects.filter(user_id=user_id).only("recurrence_rule", "version")
    rows = {row.pk: row for row in stored_rows}
    assert {name: rows[pk].recurrence_rule for name, (pk, _) in stored.items()} == {
        name: expected for name, (_, expected) in stored.items()
    }
    for row in rows.values():
        assert rule_to_text(parse_rule(row.recurrence_rule)) == row.recurrence_rule
        assert row.version == 1
    # A repaired series can be written again (the old text was refused on every write).
    _migrate()
    task, changed = services.task_update(
        user_id=user_id, task_id=stored["year_1"][0], changes={"title": "renamed"}
    )
    assert (task.title, changed) == ("renamed", ("title",))


# Task history before it moved to tasks: the model was the events app's.
BEFORE_HISTORY_MOVE = [
    ("tasks", "0003_repair_recurrence_until"),
    ("events", "0003_log_by_snapshot"),
]


@pytest.fixture
def before_the_history_move():
    _migrate(*BEFORE_HISTORY_MOVE)
    yield
    _migrate()


def test_task_history_written_before_the_move_is_read_through_the_tasks_model(
    before_the_history_move, user_id, other_user_id
):
    # given a database where the events app owns TaskHistory, with rows the old code wrote
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("events", "0004_task_history_moves_to_tasks") not in applied
    assert ("tasks", "0004_task_history") not in applied
    old_state = MigrationExecutor(connection).loader.project_state(BEFORE_HISTORY_MOVE)
    assert old_state.apps.get_model("events", "TaskHistory")._meta.db_table == "events_taskhistory"
    event_ids = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
    occurred = datetime(2031, 6, 1, 9, tzinfo=UTC)
    with connection.cursor() as cursor:
        for owner, event_id, event_type, sequence in [
            (user_id, event_ids[0], "task.created", 1),
            (user_id, event_ids[1], "task.updated", 2),
            (other_user_id, event_ids[2], "task.created", 1),
        ]:
            cursor.execute(
                "INSERT INTO events_taskhistory (user_id, task_id, event_id, event_type, sequence, "
                "occurred_at, changed_fields, previous, task_data, recorded_at) "
                "VALUES (%s, 41, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, now())",
                [
                    owner,
                    event_id,
                    event_type,
                    sequence,
                    occurred,
                    ["title"] if sequence == 2 else [],
                    '{"title": "before"}' if sequence == 2 else "{}",
                    '{"id": 41, "title": "after"}',
                ],
            )

    # when the migrations run forward
    _migrate()

    # then the tasks app's model reads every row as it was, and the events app has none
    mine = list(TaskHistory.objects.filter(user_id=user_id).order_by("sequence"))
    assert [(row.event_id, row.event_type, row.sequence) for row in mine] == [
        (event_ids[0], "task.created", 1),
        (event_ids[1], "task.updated", 2),
    ]
    assert (mine[1].changed_fields, mine[1].previous) == (["title"], {"title": "before"})
    assert mine[1].task_data == {"id": 41, "title": "after"}
    assert mine[0].occurred_at == occurred
    assert TaskHistory.objects.filter(user_id=other_user_id).count() == 1
    assert ("tasks", "0004_task_history") in MigrationRecorder(connection).applied_migrations()
    new_state = MigrationExecutor(connection).loader.project_state()
    assert ("events", "taskhistory") not in new_state.models
    assert new_state.models["tasks", "taskhistory"].options["db_table"] == "events_taskhistory"
