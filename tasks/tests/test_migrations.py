"""Data migrations, run for real: the schema is taken back to the migration before, rows are
written with SQL as the old code left them, and the migration is applied."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from recurrence.rules import parse_rule, rule_to_text
from tasks import services
from tasks.models import Task

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

    rows = {row.pk: row for row in Task.objects.filter(user_id=user_id)}
    assert {name: rows[pk].recurrence_rule for name, (pk, _) in stored.items()} == {
        name: expected for name, (_, expected) in stored.items()
    }
    for row in rows.values():
        assert rule_to_text(parse_rule(row.recurrence_rule)) == row.recurrence_rule
        assert row.version == 1
    # A repaired series can be written again (the old text was refused on every write).
    task, changed = services.task_update(
        user_id=user_id, task_id=stored["year_1"][0], changes={"title": "renamed"}
    )
    assert (task.title, changed) == ("renamed", ("title",))
