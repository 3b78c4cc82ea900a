"""Wakes: a commit in one process (here: one connection) wakes waiters everywhere."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from events import wakeup
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("broker", "channel"), [("embedded", wakeup.PUBLISHED), ("dapr", wakeup.OUTBOX)]
)
def test_a_commit_that_records_events_wakes_the_outbox_readers_once_committed(
    user_id, settings, broker, channel
):
    # given the embedded consumers (they read the outbox itself) or the relay (with Dapr)
    settings.EVENTS_BROKER = broker
    waiter = wakeup.waiter(channel)
    try:
        with transaction.atomic():
            services.task_create(user_id=user_id, title="a")
            assert not waiter.is_set()
        assert waiter.is_set()
    finally:
        wakeup.forget(channel, waiter)


def test_a_notify_from_another_connection_reaches_the_listener():
    # given this process's listener, connected
    wakeup.acquire_listener()
    try:
        assert wakeup._listener.connected.wait(10)
        waiter = wakeup.waiter(wakeup.PUBLISHED)
        waiter.clear()

        # when another connection sends the notification (as another process would)
        def notify():
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, '')", [wakeup.PUBLISHED])
            finally:
                connection.close()

        thread = threading.Thread(target=notify)
        thread.start()
        thread.join(10)

        # then the waiter here is woken
        assert waiter.wait(5)
        wakeup.forget(wakeup.PUBLISHED, waiter)
    finally:
        wakeup.release_listener()
    assert wakeup._listener is None
