"""Test helpers about users' locks, shared by the apps' tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from django.db import connection, transaction

from core.locking import lock_user


class HeldLock:
    released_at: float | None = None  # time.monotonic() just before the holder commits


@contextmanager
def user_lock_held(user_id: str, *, seconds: float):
    """Another connection holds ``user_id``'s lock from entry for ``seconds`` (a change of that
    user committing elsewhere); yields a ``HeldLock`` that says when it let go. Needs a
    ``transaction=True`` database test."""
    holding = threading.Event()
    held = HeldLock()

    def hold():
        try:
            with transaction.atomic():
                lock_user(user_id)
                holding.set()
                time.sleep(seconds)
                held.released_at = time.monotonic()
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    if not holding.wait(5):
        raise RuntimeError("the lock holder did not start")
    try:
        yield held
    finally:
        holder.join(seconds + 10)
