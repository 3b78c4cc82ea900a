"""Serialising one user's writes.

Each write transaction takes the user's advisory lock before it writes anything. Two things
follow: a user's changes commit one after another (so their event sequence numbers follow commit
order), and a transaction gets its id only after it holds the lock (so ordering outbox rows by
transaction id matches commit order per user). Every writer, the consumers and the reminder
scheduler included, locks through these helpers. A transaction locks either one user
(``lock_user``) or several in one sorted order (``lock_users``), and takes its row locks only
after its users' locks, so no two writers can wait for each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

# A user's lock is the advisory lock keyed by this hash of the user id.
USER_LOCK_SEED = 7411


def lock_user(user_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", [user_id, USER_LOCK_SEED]
        )


def lock_users(user_ids: Iterable[str]) -> list[str]:
    """Take several users' locks, waiting, in sorted order (one round trip); returns the users.

    The array is unnested in its own order, so the locks are taken in that order.
    """
    ordered = sorted(set(user_ids))
    if ordered:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(u, %s))) "
                "FROM unnest(%s::text[]) AS u",
                [USER_LOCK_SEED, ordered],
            )
    return ordered
