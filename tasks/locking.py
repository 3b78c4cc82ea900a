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


def try_lock_users(user_ids: list[str]) -> set[str]:
    """Take, without waiting, the locks of those users whose lock is free; returns them.

    The one exception to "one user per transaction": a transaction that never waits for a
    user's lock cannot be part of a lock-order deadlock, so a batch writer (the reminder
    scheduler) may hold several users' locks this way and leave the busy users for later.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u FROM unnest(%s::text[]) AS u "
            "WHERE pg_try_advisory_xact_lock(hashtextextended(u, 7411))",
            [sorted(set(user_ids))],
        )
        return {row[0] for row in cursor.fetchall()}
