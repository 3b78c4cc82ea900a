"""The backend's health check: a connection that still works is taken without a round trip,
and one whose server end is gone is closed and opened again before a request uses it."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.db.backends.postgresql import base as django_backend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_connection_afterwards():
    yield
    connection.close()  # the test's flush needs a working connection


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_working_idle_connection_is_usable_without_a_query(monkeypatch):
    _backend_pid()  # connected, idle
    monkeypatch.setattr(
        django_backend.DatabaseWrapper,
        "is_usable",
        lambda self: pytest.fail("the check sent SELECT 1"),
    )

    assert connection.is_usable()


def test_a_connection_whose_backend_was_terminated_is_not_usable():
    _terminate(_backend_pid())

    deadline = time.monotonic() + 5
    while connection.is_usable():
        assert time.monotonic() < deadline, "the server's end of the connection never showed"
        time.sleep(0.01)


def test_the_next_request_after_the_server_ended_the_connection_succeeds():
    # given a request that left its connection open, whose backend the server then ended
    old = _backend_pid()
    close_old_connections()  # as each request ends (request_finished)
    _terminate(old)
    time.sleep(0.2)

    # when the next request starts (request_started) and reads
    close_old_connections()
    new = _backend_pid()

    # then it reads, on a new connection
    assert new != old
