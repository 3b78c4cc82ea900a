"""Migration 0006 run for real: tasks written under the English-only generated vector are
found in every language afterwards, and the lexicon holds their new words."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tasks import selectors
from tasks.selectors import TaskFilters

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("tasks", "0005_task_series_skip_trash")


def _migrate(*targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


@pytest.fixture
def before_multilingual_search():
    _migrate(BEFORE)
    yield
    _migrate()


def test_existing_rows_get_the_new_vector_and_words(before_multilingual_search, user_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tasks_task (user_id, title, description, completed, priority, tags, "
            "recurrence_rule, series_index, series_anchor_index, repeat_from, timezone, "
            "created_at, updated_at, version) "
            "VALUES (%s, 'Café with José', 'Übersicht der Ausgaben', false, 2, '[]'::jsonb, "
            "'none', 0, 0, 'due', 'UTC', now(), now(), 1) RETURNING id",
            [user_id],
        )
        task_id = cursor.fetchone()[0]
        cursor.execute("SELECT search_vector::text FROM tasks_task WHERE id = %s", [task_id])
        assert "'cafe'" not in cursor.fetchone()[0]

    _migrate()

    for query in ("cafe", "jose", "ubersicht", "Ausgabe"):
        page = selectors.task_list_for_user(user_id=user_id, filters=TaskFilters(q=query))
        assert [item["id"] for item in page.items] == [task_id], query
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(lexeme) FROM tasks_searchlexeme WHERE user_id = %s", [user_id]
        )
        assert {"cafe", "jose", "ubersicht", "ausgab"} <= set(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'tasks_task' AND column_name = 'search_document'"
        )
        assert cursor.fetchone()[0] == 0
