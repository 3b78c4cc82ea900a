"""The fast ``timestamptz`` loader reads every value exactly as Django's own loader does."""

from datetime import UTC, datetime

import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from core.db import FastTimestamptzLoader

pytestmark = pytest.mark.django_db

VALUES = [
    "2026-01-31 09:00:00+00",
    "2026-01-31 09:00:00.5+00",
    "2026-03-29 01:00:00.000001+00",
    "2024-02-29 23:59:59.999999+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2026-10-25 01:30:00+01",
]


def _select(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_connections_use_the_fast_loader():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    assert issubclass(loader, FastTimestamptzLoader)
    assert loader.timezone == connection.timezone


def test_values_load_as_with_djangos_loader():
    rows = _select(
        "SELECT v::timestamptz, v::timestamptz::text FROM unnest(%s::text[]) AS v", [VALUES]
    )
    connection.ensure_connection()

    class DjangoLoader(BaseTzLoader):
        timezone = connection.timezone

    for value, text in rows:
        expected = DjangoLoader(1184, connection.connection).load(text.encode())
        assert value == expected
        assert value.tzinfo is UTC or value.utcoffset().total_seconds() == 0
        assert value.isoformat() == expected.isoformat()


def test_values_python_cannot_hold_still_fail_clearly():
    for literal in ("'0044-03-15 00:00+00 BC'", "'infinity'"):
        with pytest.raises(DataError):
            _select(f"SELECT {literal}::timestamptz")


def test_a_value_written_reads_back_unchanged():
    written = datetime(2031, 5, 4, 9, 30, 0, 123456, tzinfo=UTC)
    ((value,),) = _select("SELECT %s::timestamptz", [written])
    assert value == written and value.tzinfo == written.tzinfo
