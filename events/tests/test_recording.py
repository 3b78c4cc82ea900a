"""Recording: every service leaves exactly its envelope in the outbox, in the same transaction."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from events.models import OutboxEvent, UserEventSequence
from events.schemas import InvalidEnvelope, parse_envelope
from events.selectors import events_for_user_since
from events.services import EventRecordingError, NewEvent, event_record, event_records
from events.tests.support import run_in_threads, title_update
from tasks import services
from tasks.models import Task
from tasks.representation import task_to_dict

pytestmark = pytest.mark.django_db


def rows_for(user_id: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(user_id=user_id).order_by("sequence"))


def test_each_service_records_its_envelope_with_the_next_sequence(user_id):
    # given a user with no events
    # when every service runs once
    task = services.task_create(user_id=user_id, title="Write report", tags=["work"])
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "Write the report"})
    services.task_complete(user_id=user_id, task_id=task.pk)
    services.task_reopen(user_id=user_id, task_id=task.pk)
    last = services.task_delete(user_id=user_id, task_id=task.pk, stop_series=True)

    # then the outbox holds exactly five envelopes, sequences 1..5, each valid
    rows = rows_for(user_id)
    assert [row.event_type for row in rows] == [
        "task.created",
        "task.updated",
        "task.completed",
        "task.reopened",
        "task.deleted",
    ]
    assert [row.sequence for row in rows] == [1, 2, 3, 4, 5]
    envelopes = [parse_envelope(row.envelope) for row in rows]
    for row, envelope in zip(rows, envelopes, strict=True):
        assert envelope.event_id == row.event_id
        assert envelope.sequence == row.sequence
        assert envelope.user_id == user_id
        assert envelope.schema_version == 1
        assert envelope.payload.task_id == task.pk
        assert row.topics == ["task-events", "task-updates"]
        assert row.sent_at is None
    created, updated, completed, reopened, deleted = envelopes
    assert created.payload.task_data.title == "Write report"
    assert created.payload.task_data.tags == ["work"]
    assert updated.payload.changed_fields == ["title"]
    assert updated.payload.previous == {"title": "Write report"}
    assert updated.payload.task_data.title == "Write the report"
    assert set(completed.payload.changed_fields) == {"completed", "completed_at"}
    assert completed.payload.previous == {"completed": False, "completed_at": None}
    assert completed.payload.task_data.completed is True
    assert reopened.payload.task_data.completed is False
    assert deleted.payload.stop_series is True
    assert deleted.payload.task_data.model_dump(mode="json") == {**last}
    assert UserEventSequence.objects.get(user_id=user_id).last_sequence == 5


def test_the_snapshot_is_the_rest_representation(user_id):
    # given a task with every field set
    due = timezone.now() + timedelta(days=2)
    task = services.task_create(
        user_id=user_id,
        title="Pay rent",
        description="by transfer",
        priority="urgent",
        tags=["home", "money"],
        due_date=due,
        reminder_time="1h",
        recurrence_pattern="monthly",
        timezone_name="Europe/Berlin",
    )
    # then the event's task_data, serialised, is exactly what REST shows
    row = rows_for(user_id)[0]
    assert row.envelope["payload"]["task_data"] == task_to_dict(task)


def test_a_rolled_back_change_leaves_no_event_and_no_used_sequence(user_id):
    # given one committed event
    services.task_create(user_id=user_id, title="kept")

    # when a change rolls back after its event was recorded
    with pytest.raises(RuntimeError), transaction.atomic():
        services.task_create(user_id=user_id, title="rolled back")
        raise RuntimeError("abort")

    # then no row and no sequence number was used: the next event is #2
    assert [row.envelope["payload"]["task_data"]["title"] for row in rows_for(user_id)] == ["kept"]
    services.task_create(user_id=user_id, title="next")
    assert [row.sequence for row in rows_for(user_id)] == [1, 2]


def test_a_change_that_changes_nothing_records_nothing(make_task, user_id):
    task = make_task(title="same")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "same"})
    services.task_complete(user_id=user_id, task_id=task.pk)
    services.task_complete(user_id=user_id, task_id=task.pk)
    assert [row.event_type for row in rows_for(user_id)] == ["task.created", "task.completed"]


def test_sequences_are_per_user(user_id, other_user_id):
    services.task_create(user_id=user_id, title="a")
    services.task_create(user_id=other_user_id, title="b")
    services.task_create(user_id=user_id, title="c")
    assert [row.sequence for row in rows_for(user_id)] == [1, 2]
    assert [row.sequence for row in rows_for(other_user_id)] == [1]


def test_an_invalid_envelope_never_enters_the_outbox(user_id):
    # given a payload whose task_data breaks the schema (priority unknown, task ids differ)
    snapshot = {**task_to_dict(services.task_create(user_id=user_id, title="x"))}
    before = OutboxEvent.objects.count()

    # when it is recorded
    with pytest.raises(InvalidEnvelope) as info, transaction.atomic():
        event_record(
            event_type="task.updated",
            user_id=user_id,
            payload={
                "task_id": snapshot["id"] + 1,
                "task_data": {**snapshot, "priority": "whenever"},
                "changed_fields": ["priority"],
                "previous": {"priority": "medium"},
            },
        )

    # then the error names the problem and nothing was written or consumed
    assert "priority" in str(info.value)
    assert OutboxEvent.objects.count() == before
    assert UserEventSequence.objects.get(user_id=user_id).last_sequence == 1


def test_many_events_in_one_statement_number_each_users_in_the_order_given(user_id, other_user_id):
    mine = services.task_create(user_id=user_id, title="a")  # sequence 1
    theirs = services.task_create(user_id=other_user_id, title="b")

    with transaction.atomic():
        envelopes = event_records(
            [
                NewEvent("task.updated", user_id, title_update(mine, "a1")),
                NewEvent("task.updated", other_user_id, title_update(theirs, "b1")),
                NewEvent("task.updated", user_id, title_update(mine, "a2")),
                NewEvent("task.updated", user_id, title_update(mine, "a3")),
            ]
        )

    assert [(e.user_id, e.sequence) for e in envelopes] == [
        (user_id, 2),
        (other_user_id, 2),
        (user_id, 3),
        (user_id, 4),
    ]
    rows = rows_for(user_id)
    assert [row.sequence for row in rows] == [1, 2, 3, 4]
    assert [parse_envelope(row.envelope).payload.task_data.title for row in rows[1:]] == [
        "a1",
        "a2",
        "a3",
    ]
    assert all(parse_envelope(row.envelope).sequence == row.sequence for row in rows)
    assert UserEventSequence.objects.get(user_id=user_id).last_sequence == 4
    assert UserEventSequence.objects.get(user_id=other_user_id).last_sequence == 2


def test_one_invalid_event_keeps_the_whole_batch_out(user_id):
    task = services.task_create(user_id=user_id, title="a")
    broken = {**title_update(task, "b"), "task_id": task.pk + 1}

    with pytest.raises(InvalidEnvelope), transaction.atomic():
        event_records(
            [
                NewEvent("task.updated", user_id, title_update(task, "ok")),
                NewEvent("task.updated", user_id, broken),
            ]
        )

    assert [row.sequence for row in rows_for(user_id)] == [1]
    assert UserEventSequence.objects.get(user_id=user_id).last_sequence == 1


def test_an_unknown_event_type_is_refused(user_id):
    with pytest.raises(InvalidEnvelope), transaction.atomic():
        event_record(event_type="task.exploded", user_id=user_id, payload={})
    assert not OutboxEvent.objects.filter(user_id=user_id).exists()


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(user_id):
    with pytest.raises(EventRecordingError):
        event_record(event_type="task.created", user_id=user_id, payload={})
    assert not OutboxEvent.objects.exists()


def test_a_failing_recording_rolls_the_task_change_back(user_id, monkeypatch):
    # given the outbox refuses every envelope
    def refuse(**kwargs):
        raise InvalidEnvelope("refused")

    monkeypatch.setattr("events.services.build_envelope", refuse)
    # when a task is created, then the whole change fails and leaves nothing
    with pytest.raises(InvalidEnvelope):
        services.task_create(user_id=user_id, title="never")
    assert not Task.objects.filter(user_id=user_id).exists()
    assert not OutboxEvent.objects.filter(user_id=user_id).exists()


def test_reminder_events_are_recorded_on_their_topics(make_task, user_id):
    # given a task with a reminder
    task = make_task(due_date=timezone.now() + timedelta(days=1), reminder_time="1h")
    snapshot = task_to_dict(task)
    last = UserEventSequence.objects.get(user_id=user_id).last_sequence
    # when a reminder event is recorded in a transaction
    with transaction.atomic():
        envelope = event_record(
            event_type="reminder.scheduled",
            user_id=user_id,
            payload={"task_id": task.pk, "task_data": snapshot, "remind_at": snapshot["remind_at"]},
        )
    # then it follows the user's earlier events in the same sequence, on reminders and task-updates
    row = OutboxEvent.objects.get(event_id=envelope.event_id)
    assert row.sequence == last + 1
    assert row.topics == ["reminders", "task-updates"]
    assert row.envelope["payload"]["remind_at"] == snapshot["remind_at"]


def test_events_for_user_since_returns_what_a_client_missed(user_id, other_user_id):
    # given five events of one user and one of another
    task = services.task_create(user_id=user_id, title="t")
    for index in range(4):
        services.task_update(user_id=user_id, task_id=task.pk, changes={"title": f"t{index}"})
    services.task_create(user_id=other_user_id, title="not yours")

    # when a client that saw #2 asks
    backlog = events_for_user_since(user_id=user_id, after_sequence=2)

    # then it gets #3..#5 of its own user, in order, and nothing is missing
    assert [envelope["sequence"] for envelope in backlog.envelopes] == [3, 4, 5]
    assert {envelope["user_id"] for envelope in backlog.envelopes} == {user_id}
    assert backlog.complete
    assert events_for_user_since(user_id=user_id, after_sequence=5).envelopes == []
    assert events_for_user_since(user_id=user_id, after_sequence=5).complete
    # and when the oldest of them has expired, the backlog says it is incomplete
    OutboxEvent.objects.filter(user_id=user_id, sequence=3).delete()
    assert not events_for_user_since(user_id=user_id, after_sequence=2).complete


def test_event_ids_are_unique(user_id):
    task = services.task_create(user_id=user_id, title="a")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "b"})
    ids = [row.event_id for row in rows_for(user_id)]
    assert len(set(ids)) == 2
    assert all(isinstance(value, uuid.UUID) for value in ids)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_user_get_gapless_sequences_in_commit_order(user_id):
    # given four threads creating ten tasks each for the same user, one of them rolling back
    def write(index):
        for number in range(10):
            if index == 0 and number == 5:
                with pytest.raises(RuntimeError), transaction.atomic():
                    services.task_create(user_id=user_id, title="rolled back")
                    raise RuntimeError
            services.task_create(user_id=user_id, title=f"{index}-{number}")

    run_in_threads(*(functools.partial(write, index) for index in range(4)), timeout=30)

    # then the 40 committed events are numbered 1..40, and outbox id order is sequence order
    rows = list(OutboxEvent.objects.filter(user_id=user_id).order_by("id"))
    assert [row.sequence for row in rows] == list(range(1, 41))
    assert [row.envelope["sequence"] for row in rows] == list(range(1, 41))
