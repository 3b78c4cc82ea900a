"""Serialising one user's writes.

Each write transaction takes the user's advisory lock before it writes anything. Two things
follow: a user's changes commit one after another (so their event sequence numbers follow commit
order), and a transaction gets its id only after it holds the lock (so ordering outbox rows by
transaction id matches commit order per user). Every writer, the consumers included, locks
through this one helper, and only one user per transaction, so there is no lock-order deadlock.
"""

from __future__ import annotations

from django.db import connection


def lock_user(user_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7411))", [user_id])
