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


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """Run the block's reads in one snapshot. Inside a transaction already (a test's, or a
    write's), the block joins it: that transaction decides what is seen."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        # The transaction's first statement, so that its snapshot is the one every read of the
        # block sees (said in SQL rather than through the driver's connection attributes, which
        # a pooled or reused connection may not carry into the next BEGIN).
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
