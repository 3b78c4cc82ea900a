"""Reads that must agree with each other: a page of tasks and the event sequence it reflects.

``GET /api/tasks/`` answers the sequence of the user's last event its page includes, so a
client that then reads ``/api/changes/?since=<that>`` gets every later change exactly once. Both
reads run in one REPEATABLE READ, read-only transaction: they see the same committed state, and
a change that commits between them is in neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from psycopg import IsolationLevel


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """Run the block's reads in one snapshot. Inside a transaction already (a test's, or a
    write's), the block joins it: that transaction decides what is seen."""
    if connection.in_atomic_block:
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.isolation_level, raw.read_only
    # psycopg opens the transaction with these in its BEGIN: no extra round trip.
    raw.isolation_level, raw.read_only = IsolationLevel.REPEATABLE_READ, True
    try:
        with transaction.atomic():
            yield
    finally:
        if connection.connection is raw:  # not closed by an error in the block
            raw.isolation_level, raw.read_only = previous
