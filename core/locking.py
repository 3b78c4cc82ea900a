"""Serialising one user's writes.

Each write transaction takes the user's advisory lock before it writes anything. Two things
follow: a user's changes commit one after another (so their event sequence numbers follow commit
order), and a transaction gets its id only after it holds the lock (so ordering outbox rows by
transaction id matches commit order per user). Every writer, the consumers and the reminder
scheduler included, locks through these helpers. A transaction locks either one user
(``lock_user``) or several in one sorted order (``lock_users``), and takes its row locks only
after its users' locks, so no two writers can wait for each other in a cycle.

A statement of a caller's own may take the lock too (``USER_LOCK``): a keyed write takes its
user's lock with its key claim, in one round trip, before anything else (``idempotency``), and
says so with ``user_locked_by_caller``; its transaction then locks no other user. An
``Idempotency-Key`` row is the one row lock taken before a user's lock: every claim is its
transaction's first statement, so no transaction waits for a key while holding a user.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection

# A user's lock is the advisory lock keyed by this hash of the user id.
USER_LOCK_SEED = 7411
# The lock as SQL, for a statement that takes it beside other work: ``{user}`` and ``{seed}``
# are the placeholders of the user id and of ``USER_LOCK_SEED``.
USER_LOCK = "pg_advisory_xact_lock(hashtextextended({user}, {seed}))"

# The user whose lock the current transaction block took through ``USER_LOCK``, and the block.
_taken_by_caller: ContextVar[tuple[str, object] | None] = ContextVar(
    "user_lock_taken_by_caller", default=None
)


@contextmanager
def user_locked_by_caller(user_id: str) -> Iterator[None]:
    """Within the block, the innermost transaction block holds ``user_id``'s lock, taken by the
    caller's own statement (``USER_LOCK``): ``lock_user`` does not ask for it again."""
    blocks = connection.atomic_blocks
    if not blocks:
        raise RuntimeError("A user's lock is held only inside a transaction.")
    token = _taken_by_caller.set((user_id, blocks[-1]))
    try:
        yield
    finally:
        _taken_by_caller.reset(token)


def _held_for() -> str | None:
    """The user whose lock a caller's statement took in a block still open, if any."""
    taken = _taken_by_caller.get()
    if taken is None or not any(block is taken[1] for block in connection.atomic_blocks):
        return None
    return taken[0]


def lock_user(user_id: str) -> None:
    if _held_for() == user_id:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {USER_LOCK.format(user='%s', seed='%s')}", [user_id, USER_LOCK_SEED]
        )


def lock_users(user_ids: Iterable[str]) -> list[str]:
    """Take several users' locks, waiting, in sorted order (one round trip); returns the users.

    The array is unnested in its own order, so the locks are taken in that order.
    """
    ordered = sorted(set(user_ids))
    held = _held_for()
    if held is not None and set(ordered) - {held}:
        # Its user's lock came first, so others taken now would break the one order.
        raise RuntimeError("A transaction that locked its user first locks no other user.")
    if ordered:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(u, %s))) "
                "FROM unnest(%s::text[]) AS u",
                [USER_LOCK_SEED, ordered],
            )
    return ordered
