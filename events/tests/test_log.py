"""The embedded log (``events.log``): a consumer reads every committed event once, each user's
in sequence order, whatever order transactions take their ids and commit in."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction

from bench.benchmarks import plan_scans
from events import log, topics
from events.consumers import Consumer, get_consumer, register, unregister
from events.log import Snapshot
from events.models import ConsumerCursor, OutboxEvent
from events.runners import EmbeddedConsumerRunner
from events.services import NewEvent, event_records, events_expire
from events.tests.support import consume_all, title_update
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import TaskHistory

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = "test-log-order"


@pytest.fixture
def seen():
    """A consumer that notes each task event it gets as (user, sequence)."""
    noted: list[tuple[str, int]] = []
    unregister(ORDER)
    consumer = register(
        Consumer(
            name=ORDER,
            topic=topics.TASK_EVENTS,
            handle=lambda event: noted.append((event.user_id, event.sequence)),
            writes_for_users=False,
        )
    )
    yield consumer, noted
    unregister(ORDER)


def task_with_events(user_id: str, count: int):
    """A task created and updated until it has ``count`` events."""
    task = services.task_create(user_id=user_id, title="v0")
    for version in range(1, count):
        services.task_update(user_id=user_id, task_id=task.pk, changes={"title": f"v{version}"})
    return task


def in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_consumer_cursor_never_steps_past_a_row_that_commits_later(user_id, other_user_id):
    # given transaction A records an event first (lower outbox id) but has not committed,
    # and transaction B records one later (higher id) and commits
    a_recorded, a_may_commit = threading.Event(), threading.Event()

    def transaction_a():
        with transaction.atomic():
            services.task_create(user_id=user_id, title="committed second")
            a_recorded.set()
            assert a_may_commit.wait(10)

    thread = in_thread(transaction_a)
    assert a_recorded.wait(10)
    services.task_create(user_id=other_user_id, title="committed first")

    # when the audit consumer reads while A is still open
    audit = get_consumer(AUDIT)
    assert consume_all(audit) == 1
    # then only B's event was consumed: A's open transaction did not hold it back
    assert list(TaskHistory.objects.values_list("user_id", flat=True)) == [other_user_id]

    # when A commits and the consumer reads again
    a_may_commit.set()
    thread.join(10)
    assert consume_all(audit) == 1

    # then A's event, although its id is lower, was consumed too: each event exactly once
    a_row = OutboxEvent.objects.get(user_id=user_id)
    b_row = OutboxEvent.objects.get(user_id=other_user_id)
    assert a_row.id < b_row.id
    assert sorted(TaskHistory.objects.values_list("user_id", flat=True)) == sorted(
        [user_id, other_user_id]
    )


def test_a_users_events_keep_their_order_when_the_later_one_has_the_older_transaction(
    user_id, seen
):
    # given transaction B takes its id first, then waits for the user's lock while
    # transaction A records the user's first event and commits; B then records the second
    consumer, noted = seen
    b_has_id, a_recorded = threading.Event(), threading.Event()

    def transaction_b():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()")
            b_has_id.set()
            assert a_recorded.wait(10)
            services.task_create(user_id=user_id, title="second")

    def transaction_a():
        assert b_has_id.wait(10)
        with transaction.atomic():
            services.task_create(user_id=user_id, title="first")
            a_recorded.set()
            threading.Event().wait(0.3)  # B is now waiting for the user's lock

    threads = [in_thread(transaction_b), in_thread(transaction_a)]
    for thread in threads:
        thread.join(10)
    first, second = OutboxEvent.objects.filter(user_id=user_id).order_by("sequence")
    assert second.transaction_id < first.transaction_id  # the later event's id is older
    assert (first.log_key, first.id) < (second.log_key, second.id)

    # when the consumer reads one event at a time
    runner = EmbeddedConsumerRunner(consumer, batch_size=1)
    while runner.poll():
        pass

    # then it got the user's events in sequence order
    assert noted == [(user_id, 1), (user_id, 2)]


def test_a_read_larger_than_a_batch_goes_on_in_batches_while_new_events_commit(user_id, seen):
    # given five committed events
    consumer, noted = seen
    task = task_with_events(user_id, 5)
    runner = EmbeddedConsumerRunner(consumer, batch_size=2)

    # when the consumer reads a batch of two, a sixth event commits, and it reads on
    assert runner.poll() == 2
    assert ConsumerCursor.objects.get(consumer=ORDER).span_snapshot is not None
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "v5"})
    reads = []
    while consumed := runner.poll():
        reads.append(consumed)

    # then it read the first five to the end of their span and the sixth at once after it:
    # each once, in order
    assert reads == [2, 2]
    assert noted == [(user_id, sequence) for sequence in range(1, 7)]
    assert ConsumerCursor.objects.get(consumer=ORDER).span_snapshot is None


def test_a_span_that_ends_with_a_full_batch_is_closed_and_the_log_read_on(user_id, seen):
    # given four committed events, read two at a time
    consumer, noted = seen
    task = task_with_events(user_id, 4)
    runner = EmbeddedConsumerRunner(consumer, batch_size=2)
    assert [runner.poll(), runner.poll()] == [2, 2]

    # when a fifth commits after the span's snapshot
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "v4"})

    # then the next poll closes the span and reads it
    assert runner.poll() == 1
    assert runner.poll() == 0
    assert noted == [(user_id, sequence) for sequence in range(1, 6)]


def test_events_a_handler_records_are_read_after_its_transaction_commits(user_id, seen):
    # given a consumer whose handler records an event for every event it gets of a first task
    _, noted = seen
    unregister(ORDER)
    task = services.task_create(user_id=user_id, title="first")

    def handle(event):
        noted.append((event.user_id, event.sequence))
        if event.payload.task_id == task.pk:
            services.task_create(user_id=user_id, title="made by the handler")

    consumer = register(Consumer(name=ORDER, topic=topics.TASK_EVENTS, handle=handle))

    # when the consumer reads until there is nothing new
    assert consume_all(consumer) == 2

    # then it got the event and then the one its own handler recorded
    assert noted == [(user_id, 1), (user_id, 2)]


class _Explaining:
    """A database cursor that keeps the plan of each statement before running it."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.plans: list[dict] = []

    def execute(self, statement, params=None):
        self.cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        self.plans.append(self.cursor.fetchone()[0][0]["Plan"])
        self.cursor.execute(statement, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


def _record_updates(task, user_id: str, count: int, *, per_transaction: int) -> None:
    payload = title_update(task, "t2")
    for _ in range(count // per_transaction):
        with transaction.atomic():
            event_records([NewEvent("task.updated", user_id, payload)] * per_transaction)


def test_a_consumer_catching_up_reads_each_batch_off_the_index_in_log_order(user_id, seen):
    # given the outbox's statistics were taken on events since expired, before a backlog of
    # newer ones committed
    consumer, _ = seen
    task = services.task_create(user_id=user_id, title="t")
    _record_updates(task, user_id, 2_000, per_transaction=500)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_outboxevent")
    events_expire(older_than=timedelta(0))
    with connection.cursor() as cursor:
        log.cursor_create(cursor, consumer=ORDER, at_now=True)
    _record_updates(task, user_id, 2_000, per_transaction=50)

    # when the consumer reads a batch of that backlog, and the lag is counted
    with transaction.atomic(), connection.cursor() as cursor:
        explaining = _Explaining(cursor)
        batch = log.read(explaining, consumer=ORDER, topic=consumer.topic, limit=200)
        unread = log.unread_count(explaining, consumer=ORDER, topic=consumer.topic)

    # then both walked the log's index from the cursor on; neither read the whole backlog (or
    # the whole outbox) to take a batch or count it
    assert len(batch.rows) == 200
    assert unread == 2_000
    scans = {scan for plan in explaining.plans for scan in plan_scans(plan) if "outbox" in scan}
    assert scans == {"Index Scan on outbox_log_idx"}


@pytest.mark.parametrize(
    ("snapshot", "xid", "expected"),
    [
        ("10:20:12,15", None, "10:20:12,15"),  # no id of its own yet
        ("10:20:12,15", 25, "10:20:12,15"),  # an id after the snapshot: unseen anyway
        ("10:20:12,15", 14, "10:20:12,14,15"),  # an id the snapshot would count as committed
        ("10:20:", 7, "7:20:7"),  # ... even before its xmin
        ("10:20:12", 12, "10:20:12"),  # already in progress
    ],
)
def test_a_snapshot_counts_the_reading_transaction_as_in_progress(snapshot, xid, expected):
    parsed = Snapshot.parse(snapshot)
    assert str(parsed) == snapshot
    assert str(parsed.with_in_progress(xid)) == expected
