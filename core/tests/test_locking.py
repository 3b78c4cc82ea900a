"""Users' locks: one user, or several in one sorted order, held until the transaction ends."""

import threading

import pytest
from django.db import connection, transaction

from core.locking import USER_LOCK_SEED, lock_user, lock_users, user_locked_by_caller

pytestmark = pytest.mark.django_db(transaction=True)


def _held_elsewhere(user_id: str) -> bool:
    """Whether another connection finds ``user_id``'s lock taken."""
    result = {}

    def probe():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, %s))",
                    [user_id, USER_LOCK_SEED],
                )
                result["free"] = cursor.fetchone()[0]
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(10)
    return not result["free"]


def test_lock_users_takes_every_users_lock_once_sorted_until_commit():
    with transaction.atomic():
        assert lock_users(["b", "a", "b", "c"]) == ["a", "b", "c"]
        lock_user("a")  # a lock the transaction holds can be taken again
        assert all(_held_elsewhere(user) for user in ("a", "b", "c"))
        assert not _held_elsewhere("d")
    assert not any(_held_elsewhere(user) for user in ("a", "b", "c"))


def test_no_users_is_no_query(django_assert_num_queries):
    with transaction.atomic(), django_assert_num_queries(0):
        assert lock_users([]) == []


def test_a_lock_the_callers_statement_took_is_not_asked_again(django_assert_num_queries):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", ["a", USER_LOCK_SEED]
            )
        with user_locked_by_caller("a"):
            with django_assert_num_queries(0):
                lock_user("a")
            with django_assert_num_queries(1):
                lock_user("b")  # another user's lock is still asked for
            assert _held_elsewhere("a")


def test_outside_the_block_that_took_it_the_lock_is_asked_for_again(django_assert_num_queries):
    with transaction.atomic(), user_locked_by_caller("a"):
        pass
    with transaction.atomic(), django_assert_num_queries(1):
        lock_user("a")


def test_a_transaction_that_locked_its_user_first_locks_no_other_user():
    with transaction.atomic(), user_locked_by_caller("m"):
        assert lock_users(["m"]) == ["m"]
        with pytest.raises(RuntimeError):
            lock_users(["a", "m"])


def test_a_callers_lock_is_only_said_inside_a_transaction():
    with pytest.raises(RuntimeError), user_locked_by_caller("a"):
        pass
