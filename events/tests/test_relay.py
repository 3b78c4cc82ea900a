"""The relay: nothing lost, nothing published twice, each user in order."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection, transaction

from events import metrics
from events.brokers import BrokerUnavailable
from events.brokers.embedded import EmbeddedBroker
from events.models import OutboxEvent, OutboxPending
from events.relay import Relay, relay_once
from events.tests.support import relay_all, run_in_threads
from tasks import services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # events recorded here are queued for the relay
    pytest.mark.usefixtures("relay_publishes"),
]


class RecordingBroker:
    """A broker that keeps every row it is asked to publish."""

    name = "recording"

    def __init__(self, fail_times: int = 0, refuse: set | None = None):
        self.published: list = []
        self.fail_times = fail_times
        self.refuse = refuse or set()
        self._lock = threading.Lock()

    def publish(self, rows):
        with self._lock:
            if self.fail_times:
                self.fail_times -= 1
                raise BrokerUnavailable("broker down")
            self.published.extend(rows)
        # A broker that refuses entries: the relay marks what it accepted.
        return {row.event_id for row in rows if row.event_id in self.refuse}

    def after_commit(self, rows):
        pass

    def close(self):
        pass


def _counter(metric) -> float:
    return metric._value.get()


def assert_published_in_sequence(broker: RecordingBroker, user_id: str) -> None:
    """The broker got the user's events in sequence order."""
    sequences = [row.sequence for row in broker.published if row.user_id == user_id]
    assert sequences == sorted(sequences)


def test_the_relay_publishes_committed_rows_once_in_order(user_id, other_user_id):
    # given five committed events of two users
    task = services.task_create(user_id=user_id, title="a")
    services.task_create(user_id=other_user_id, title="b")
    for title in ("c", "d", "e"):
        services.task_update(user_id=user_id, task_id=task.pk, changes={"title": title})
    broker = RecordingBroker()

    # when the relay runs twice
    first = relay_once(broker)
    second = relay_once(broker)

    # then every row went out once, in id order, and was marked sent and taken off the queue
    assert (first.published, second.published) == (5, 0)
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [row.event_id for row in broker.published] == [row.event_id for row in rows]
    assert all(row.sent_at is not None for row in rows)
    assert not OutboxPending.objects.exists()


def test_the_embedded_mode_queues_nothing_and_its_relay_takes_old_entries_off(user_id, settings):
    # given two events queued while a broker was configured
    services.task_create(user_id=user_id, title="a")
    services.task_create(user_id=user_id, title="b")
    assert OutboxPending.objects.count() == 2

    # when the embedded mode records one more (the embedded log has it from its commit on)
    settings.EVENTS_BROKER = "embedded"
    services.task_create(user_id=user_id, title="c")

    # then it is not queued
    assert OutboxPending.objects.count() == 2

    # and when the embedded relay runs, the old entries go, with nothing sent to stamp
    assert relay_once(EmbeddedBroker()).published == 2
    assert not OutboxPending.objects.exists()
    assert not OutboxEvent.objects.filter(sent_at__isnull=False).exists()


def test_two_relays_at_once_publish_each_row_once_and_each_user_in_order(settings):
    # given 200 events of 5 users
    users = [f"relay-user-{index}" for index in range(5)]
    tasks = {user: services.task_create(user_id=user, title="t0") for user in users}
    for round_ in range(1, 40):
        for user in users:
            services.task_update(
                user_id=user, task_id=tasks[user].pk, changes={"title": f"t{round_}"}
            )
    broker = RecordingBroker()

    # when two relays run side by side with small batches
    def run_relay():
        while (
            relay_once(broker, batch_size=7).published
            or OutboxEvent.objects.filter(sent_at__isnull=True).exists()
        ):
            pass

    run_in_threads(run_relay, run_relay)

    # then each row was published exactly once
    published = [row.event_id for row in broker.published]
    assert len(published) == 200 and len(set(published)) == 200
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
    # and each user's events went out in sequence order
    for user in users:
        assert_published_in_sequence(broker, user)


def test_a_users_rows_wait_behind_an_earlier_row_another_relay_holds(user_id, other_user_id):
    # given user A's first event is claimed by another relay that has not finished
    task = services.task_create(user_id=user_id, title="a1")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "a2"})
    services.task_create(user_id=other_user_id, title="b1")
    first = OutboxEvent.objects.filter(user_id=user_id).order_by("id").first()
    claimed, release = threading.Event(), threading.Event()

    def other_relay():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM events_outboxpending WHERE id = %s FOR UPDATE", [first.pk]
                )
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    assert claimed.wait(10)

    # when this relay runs
    result = relay_once(RecordingBroker())

    # then it publishes B's event and holds A's second event back
    assert (result.published, result.held_back) == (1, 1)
    sent = set(OutboxEvent.objects.filter(sent_at__isnull=False).values_list("user_id", flat=True))
    assert sent == {other_user_id}
    release.set()
    thread.join(10)
    # and once the other relay let go, A's events go out in order
    broker = RecordingBroker()
    assert relay_all(broker) == 2
    assert_published_in_sequence(broker, user_id)


def test_refused_entries_stay_unsent_and_hold_back_that_users_later_events(user_id, other_user_id):
    # given two events of A and one of B, and a broker refusing A's first
    task = services.task_create(user_id=user_id, title="a1")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "a2"})
    services.task_create(user_id=other_user_id, title="b1")
    refused = OutboxEvent.objects.filter(user_id=user_id).order_by("id").first()
    errors = _counter(metrics.RELAY_PUBLISH_ERRORS)

    # when the relay runs
    result = relay_once(RecordingBroker(refuse={refused.event_id}))

    # then only B's event is marked sent; A's two wait, the refusal is counted and noted
    assert (result.published, result.refused) == (1, 2)
    assert set(
        OutboxEvent.objects.filter(sent_at__isnull=True).values_list("user_id", flat=True)
    ) == {user_id}
    # and they, and only they, stay in the relay's queue
    assert set(OutboxPending.objects.values_list("id", flat=True)) == set(
        OutboxEvent.objects.filter(user_id=user_id).values_list("id", flat=True)
    )
    refused.refresh_from_db()
    assert refused.publish_attempts == 1 and refused.last_error
    assert _counter(metrics.RELAY_PUBLISH_ERRORS) == errors + 1


def test_broker_failures_back_off_doubling_up_to_the_cap(user_id, fast_retries, caplog):
    # given a broker that fails four times, and a committed event
    services.task_create(user_id=user_id, title="a")
    broker = RecordingBroker(fail_times=4)
    relay = Relay(broker, sweep=False)
    errors = _counter(metrics.RELAY_PUBLISH_ERRORS)

    # when the relay runs until the event is out
    thread = threading.Thread(target=relay.run)
    with caplog.at_level(logging.WARNING, logger="events.relay"):
        thread.start()
        for _ in range(500):
            if OutboxEvent.objects.filter(sent_at__isnull=False).exists():
                break
            threading.Event().wait(0.01)
        relay.stop()
        thread.join(10)

    # then it was published after four failures, each logged and counted, with doubling
    # pauses capped at EVENTS_RELAY_BACKOFF_MAX_SECONDS
    assert OutboxEvent.objects.get().sent_at is not None
    assert _counter(metrics.RELAY_PUBLISH_ERRORS) == errors + 4
    pauses = [
        record.getMessage().rsplit("retrying in ", 1)[1]
        for record in caplog.records
        if "retrying in" in record.getMessage()
    ]
    assert pauses == ["0.01s", "0.02s", "0.04s", "0.04s"]
    assert not thread.is_alive()


def test_lag_metrics_show_unsent_rows_and_pending_dead_letters(user_id):
    from datetime import timedelta

    from django.utils import timezone

    from events.models import DeadLetter
    from events.relay import update_lag_metrics

    # given an unsent row recorded a minute ago and a dead letter nobody replayed
    services.task_create(user_id=user_id, title="waiting")
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(seconds=60))
    DeadLetter.objects.create(consumer="c", error="boom", envelope=None, raw="x")
    # when the relay updates its gauges
    update_lag_metrics()
    # then they show the row's age and one pending dead letter
    assert metrics.RELAY_LAG._value.get() >= 60
    assert metrics.DEAD_LETTERS_PENDING._value.get() == 1
    # and once everything is sent and replayed, both are back to zero
    relay_all()
    DeadLetter.objects.update(replayed_at=timezone.now())
    update_lag_metrics()
    assert metrics.RELAY_LAG._value.get() == 0
    assert metrics.DEAD_LETTERS_PENDING._value.get() == 0
