"""Consumers on the embedded log: once per event, retries, dead letters, replay, shutdown."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from events import metrics
from events.consumers import get_consumer, register, unregister
from events.models import ConsumerCursor, DeadLetter, OutboxEvent, ProcessedEvent
from events.processing import Outcome, deliver
from events.runners import EmbeddedConsumerRunner
from events.schemas import parse_envelope
from events.services import ReplayFailed, dead_letter_replay, events_expire
from events.tests import support
from events.tests.support import (
    consume_all,
    followup_title,
    followups_of,
    relay_all,
    run_in_threads,
    updates_of,
)
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import TaskHistory

pytestmark = pytest.mark.django_db(transaction=True)


def fix_followups(consumer) -> None:
    """Register the follow-up consumer again with a handler that no longer fails."""

    def handle(event):
        services.task_create(user_id=event.user_id, title=followup_title(event.event_id))

    unregister(consumer.name)
    register(dataclasses.replace(consumer, handle=handle))


def envelope_of(event_id: str):
    return parse_envelope(OutboxEvent.objects.get(event_id=event_id).envelope)


def test_the_consumer_applies_each_event_once_and_moves_its_cursor(followups, user_id):
    # given three published updates
    event_ids = updates_of(user_id, ["a", "b", "c"])
    relay_all()

    # when the consumer reads the log, twice
    consume_all(followups)
    consume_all(followups)

    # then each update got exactly one follow-up; the follow-ups' own events are not updates
    assert followups_of(event_ids) == [1, 1, 1]
    assert ProcessedEvent.objects.filter(consumer=followups.name).count() == 3
    # and the cursor's snapshot has seen every one of the four events' transactions
    snapshot = ConsumerCursor.objects.get(consumer=followups.name).snapshot
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(pg_visible_in_snapshot(transaction_id::text::xid8, %s::pg_snapshot))"
            " FROM events_outboxevent WHERE user_id = %s",
            [snapshot, user_id],
        )
        assert cursor.fetchone() == (True,)


def test_the_same_envelope_delivered_twice_is_applied_once(followups, user_id):
    # given one update event
    [event_id] = updates_of(user_id, ["a"])
    envelope = envelope_of(event_id)

    # when it is delivered twice
    first = deliver(followups, envelope, topic="task-events")
    second = deliver(followups, envelope, topic="task-events")

    # then the second delivery changed nothing
    assert (first, second) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert followups_of([event_id]) == [1]


def test_the_same_envelope_delivered_concurrently_is_applied_once(followups, user_id, monkeypatch):
    # given one update event and a slow handler, so two deliveries overlap
    [event_id] = updates_of(user_id, ["a"])
    envelope = envelope_of(event_id)
    monkeypatch.setenv("FOLLOWUP_DELAY", "0.3")
    outcomes = []

    def run():
        outcomes.append(deliver(followups, envelope, topic="task-events"))

    # when two threads deliver it at the same time
    run_in_threads(run, run, timeout=20)

    # then one applied it and the other found it done
    assert sorted(outcomes) == sorted([Outcome.APPLIED, Outcome.DUPLICATE])
    assert followups_of([event_id]) == [1]


def test_a_transient_failure_is_retried_until_it_succeeds(followups, user_id):
    # given an update the handler fails twice before accepting
    [event_id] = updates_of(user_id, ["flaky one"])
    relay_all()
    # when the consumer runs
    consume_all(followups)
    # then the third attempt applied it once, and nothing was dead-lettered
    assert support.attempts[event_id] == 3
    assert followups_of([event_id]) == [1]
    assert not DeadLetter.objects.exists()


def test_a_poison_event_is_dead_lettered_and_the_events_behind_it_go_on(followups, user_id):
    # given a poison update between two good ones
    event_ids = updates_of(user_id, ["good 1", "poison", "good 2"])
    relay_all()
    dead_before = metrics.DEAD_LETTERS.labels(consumer=followups.name)._value.get()

    # when the consumer runs
    consume_all(followups)

    # then the good ones were applied once, the poison one is a dead letter with its error
    assert followups_of(event_ids) == [1, 0, 1]
    letter = DeadLetter.objects.get()
    assert str(letter.event_id) == event_ids[1]
    assert letter.consumer == followups.name and letter.topic == "task-events"
    assert letter.attempts == followups.attempts == 5
    assert "cannot handle 'poison'" in letter.error
    assert letter.envelope["event_id"] == event_ids[1]
    assert letter.replayed_at is None
    assert support.attempts[event_ids[1]] == 5
    assert metrics.DEAD_LETTERS.labels(consumer=followups.name)._value.get() == dead_before + 1
    # and the cursor is past all of them
    assert not EmbeddedConsumerRunner(followups).poll()


def test_a_dead_letter_replays_once_the_cause_is_fixed(followups, user_id):
    # given a dead letter
    [event_id] = updates_of(user_id, ["poison"])
    relay_all()
    consume_all(followups)
    letter = DeadLetter.objects.get()

    # when it is replayed while the handler still fails, then it fails again and says why
    with pytest.raises(ReplayFailed, match="cannot handle"):
        dead_letter_replay(dead_letter_id=letter.pk)
    letter.refresh_from_db()
    assert letter.replayed_at is None and "replay failed" in letter.error

    # when the handler is fixed and it is replayed
    fix_followups(followups)
    assert dead_letter_replay(dead_letter_id=letter.pk) == Outcome.APPLIED
    # then it was applied once; a second replay changes nothing
    assert dead_letter_replay(dead_letter_id=letter.pk) == Outcome.DUPLICATE
    assert followups_of([event_id]) == [1]
    letter.refresh_from_db()
    assert letter.replayed_at is not None and letter.replay_count == 2


def test_an_invalid_row_in_the_log_becomes_a_dead_letter(user_id):
    # given a published row whose envelope no longer validates (a bad hand edit)
    services.task_create(user_id=user_id, title="fine")
    relay_all()
    row = OutboxEvent.objects.get()
    OutboxEvent.objects.filter(pk=row.pk).update(envelope={**row.envelope, "sequence": -1})
    services.task_create(user_id=user_id, title="after it")
    relay_all()

    # when the audit consumer reads the log
    consume_all(get_consumer(AUDIT))

    # then the bad row is a dead letter naming the problem, and the next event was recorded
    letter = DeadLetter.objects.get()
    assert letter.consumer == AUDIT and "sequence" in letter.error
    assert letter.envelope["sequence"] == -1
    assert list(TaskHistory.objects.values_list("task_data__title", flat=True)) == ["after it"]


def test_two_runners_of_one_consumer_apply_each_event_once(followups, user_id):
    # given 40 published updates
    event_ids = updates_of(user_id, [f"t{index}" for index in range(40)])
    relay_all()

    # when two runners of the same consumer read the log at the same time
    def run():
        runner = EmbeddedConsumerRunner(followups, batch_size=3)
        while runner.poll():
            pass

    run_in_threads(run, run)

    # then every event was applied exactly once
    assert followups_of(event_ids) == [1] * 40


def test_stop_lets_the_event_in_hand_finish(followups, user_id, monkeypatch):
    # given a slow handler and two published updates
    monkeypatch.setenv("FOLLOWUP_DELAY", "0.5")
    event_ids = updates_of(user_id, ["a", "b"])
    relay_all()
    runner = EmbeddedConsumerRunner(followups, batch_size=1)
    thread = threading.Thread(target=runner.run)

    # when it is stopped while handling the first one
    thread.start()
    deadline = time.monotonic() + 10
    while not support.attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    thread.join(10)

    # then the first was finished and committed, the second left for later
    assert not thread.is_alive()
    assert followups_of(event_ids) == [1, 0]
    # and a new runner picks up where it stopped
    monkeypatch.setenv("FOLLOWUP_DELAY", "0")
    consume_all(followups)
    assert followups_of(event_ids) == [1, 1]


def test_the_audit_consumer_records_each_tasks_history(user_id):
    # given a task's life
    task = services.task_create(user_id=user_id, title="a")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"priority": "high"})
    services.task_complete(user_id=user_id, task_id=task.pk)
    relay_all()
    # when the audit consumer runs
    consume_all(get_consumer(AUDIT))
    # then each event is one history row, in order, with what changed
    history = list(TaskHistory.objects.filter(task_id=task.pk).order_by("sequence"))
    assert [entry.event_type for entry in history] == [
        "task.created",
        "task.updated",
        "task.completed",
    ]
    assert history[1].changed_fields == ["priority"]
    assert history[1].previous == {"priority": "medium"}
    assert history[2].task_data["completed"] is True


@pytest.mark.parametrize(
    ("consumer", "waits"), [(AUDIT, False), ("realtime", False), ("recurrence", True)]
)
def test_only_consumers_that_write_for_users_wait_for_their_locks(user_id, consumer, waits):
    from events.processing import apply_batch_in_transaction
    from tasks.tests.helpers import user_lock_held

    task = services.task_create(user_id=user_id, title="a")
    services.task_complete(user_id=user_id, task_id=task.pk)
    envelopes = [
        parse_envelope(row.envelope)
        for row in OutboxEvent.objects.filter(user_id=user_id).order_by("sequence")
    ]
    with user_lock_held(user_id, seconds=2.0) as held:
        with transaction.atomic():
            apply_batch_in_transaction(get_consumer(consumer), envelopes)
        finished = time.monotonic()

    assert get_consumer(consumer).writes_for_users is waits
    # Done before the holder let go, or only after it.
    assert (held.released_at is not None and finished > held.released_at) is waits


def test_old_idempotency_keys_and_sent_rows_expire_and_unsent_rows_stay(user_id, relay_publishes):
    # given an old processed key, a new one, an old sent row and an old row the relay has still
    # to publish (to a broker: the embedded mode queues nothing)
    services.task_create(user_id=user_id, title="sent")
    relay_all()
    services.task_create(user_id=user_id, title="unsent")
    old = timezone.now() - timedelta(days=8)
    OutboxEvent.objects.update(created_at=old)
    with transaction.atomic():
        ProcessedEvent.objects.create(consumer="c", event_id="00000000-0000-0000-0000-000000000001")
        ProcessedEvent.objects.create(consumer="c", event_id="00000000-0000-0000-0000-000000000002")
    ProcessedEvent.objects.filter(event_id="00000000-0000-0000-0000-000000000001").update(
        processed_at=old
    )

    # when the sweep runs with the default retention (7 days)
    deleted = events_expire()

    # then the old key and the old sent row are gone; the rest stays
    assert deleted == {"processed": 1, "outbox": 1}
    assert list(ProcessedEvent.objects.values_list("event_id", flat=True)) == [
        uuid.UUID("00000000-0000-0000-0000-000000000002")
    ]
    assert list(
        OutboxEvent.objects.values_list("envelope__payload__task_data__title", flat=True)
    ) == ["unsent"]


def test_the_admin_lists_dead_letters_and_replays_one(client, followups, user_id):
    # given a dead letter and an operator
    [event_id] = updates_of(user_id, ["poison"])
    relay_all()
    consume_all(followups)
    letter = DeadLetter.objects.get()
    admin = User.objects.create_superuser("ops", "ops@example.com", "pw-not-used")
    client.force_login(admin)

    # when the operator opens the list, then the dead letter is shown with its error
    page = client.get("/admin/events/deadletter/")
    assert page.status_code == 200
    assert event_id in page.content.decode()
    assert "cannot handle" in page.content.decode()
    detail = client.get(f"/admin/events/deadletter/{letter.pk}/change/")
    assert detail.status_code == 200 and "poison" in detail.content.decode()

    # when the handler is fixed and the operator replays it
    fix_followups(followups)
    response = client.post(
        "/admin/events/deadletter/",
        {"action": "replay", "_selected_action": [letter.pk]},
        follow=True,
    )

    # then it was applied once and is marked replayed
    assert response.status_code == 200
    assert "replayed: applied" in response.content.decode()
    assert followups_of([event_id]) == [1]
    letter.refresh_from_db()
    assert letter.replayed_at is not None


def test_a_second_failure_of_the_same_event_updates_its_dead_letter(user_id):
    from events.services import dead_letter_record

    # given an event dead-lettered once, then replayed
    [event_id] = updates_of(user_id, ["x"])
    envelope = envelope_of(event_id)
    first = dead_letter_record(
        consumer="c", topic="task-events", error="boom 1", attempts=5, envelope=envelope
    )
    DeadLetter.objects.filter(pk=first.pk).update(replayed_at=timezone.now())
    # when it fails again
    second = dead_letter_record(
        consumer="c", topic="task-events", error="Traceback\nboom 2", attempts=3, envelope=envelope
    )
    # then it is the same letter, pending again, with both failures counted and the new error
    assert second.pk == first.pk
    letter = DeadLetter.objects.get()
    assert (letter.attempts, letter.error, letter.replayed_at) == (8, "Traceback\nboom 2", None)
