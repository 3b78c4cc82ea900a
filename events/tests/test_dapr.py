"""The Dapr adapters against a real gRPC server built from the SDK's ``DaprServicer`` stubs."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid

import pytest
from dapr.clients import DaprClient
from django.db import InterfaceError, connection

from events.brokers import BrokerUnavailable
from events.brokers.dapr import DaprBroker
from events.models import DeadLetter, OutboxEvent, OutboxPending
from events.relay import relay_once
from events.runners import DaprConsumerRunner
from events.tests import support
from events.tests.support import followups_of, updates_of
from tasks import services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # events recorded here are queued for the relay
    pytest.mark.usefixtures("relay_publishes"),
]


class RunningConsumer:
    def __init__(self, consumer):
        self.runner = DaprConsumerRunner(consumer)
        self.thread = threading.Thread(target=self.runner.run)

    def __enter__(self):
        self.thread.start()
        return self.runner

    def __exit__(self, *exc):
        self.runner.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


def test_the_relay_publishes_cloudevents_keyed_by_user(sidecar, user_id, other_user_id):
    # given three events of two users
    task = services.task_create(user_id=user_id, title="a")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"title": "b"})
    services.task_create(user_id=other_user_id, title="c")
    rows = list(OutboxEvent.objects.order_by("id"))

    # when the relay publishes through the sidecar
    result = relay_once(DaprBroker(pubsub_name="pubsub"))

    # then each topic got every envelope through the bulk API, as a CloudEvent whose id is the
    # event id, whose type is the event type and whose partition key is the user
    assert result.published == 3
    assert ("BulkPublishEvent", "task-events", 3) in sidecar.publish_calls
    assert ("BulkPublishEvent", "task-updates", 3) in sidecar.publish_calls
    for topic in ("task-events", "task-updates"):
        messages = sidecar.messages(topic)
        assert [message.id for message in messages] == [str(row.event_id) for row in rows]
        for message, row in zip(messages, rows, strict=True):
            assert message.cloudevent_type == row.event_type
            assert message.partition_key == row.user_id
            assert message.content_type == "application/json"
            assert json.loads(message.data) == row.envelope
            assert message.pubsub_name == "pubsub"
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
    # and out of the relay's queue
    assert not OutboxPending.objects.exists()


def test_a_single_event_uses_the_single_publish_api(sidecar, user_id):
    services.task_create(user_id=user_id, title="only")
    assert relay_once(DaprBroker(pubsub_name="pubsub")).published == 1
    assert sorted(sidecar.publish_calls) == [
        ("PublishEvent", "task-events", 1),
        ("PublishEvent", "task-updates", 1),
    ]
    assert sidecar.messages("task-events")[0].metadata["partitionKey"] == user_id


def test_an_unavailable_sidecar_leaves_rows_unsent_until_it_recovers(sidecar, user_id):
    # given a committed event and a sidecar that fails the next publish
    services.task_create(user_id=user_id, title="a")
    sidecar.fail_next_publishes(1)
    broker = DaprBroker(pubsub_name="pubsub")
    # when the relay tries, then it fails as a whole and nothing is marked
    with pytest.raises(BrokerUnavailable, match="UNAVAILABLE"):
        relay_once(broker)
    assert OutboxEvent.objects.get().sent_at is None
    # when it tries again, the event goes out
    assert relay_once(broker).published == 1
    assert OutboxEvent.objects.get().sent_at is not None


def test_entries_the_sidecar_refuses_stay_unsent(sidecar, user_id, other_user_id):
    services.task_create(user_id=user_id, title="a")
    services.task_create(user_id=other_user_id, title="b")
    refused = OutboxEvent.objects.get(user_id=user_id)
    sidecar.refuse_entries({str(refused.event_id)})
    result = relay_once(DaprBroker(pubsub_name="pubsub"))
    assert (result.published, result.refused) == (1, 1)
    assert list(OutboxEvent.objects.filter(sent_at__isnull=True)) == [refused]


def test_a_streaming_consumer_applies_and_acknowledges_each_event_once(sidecar, followups, user_id):
    # given two updates published twice (a relay that died before marking them)
    event_ids = updates_of(user_id, ["a", "b"])
    broker = DaprBroker(pubsub_name="pubsub")
    relay_once(broker)
    OutboxEvent.objects.update(sent_at=None)
    OutboxPending.objects.bulk_create(
        OutboxPending(id=pk) for pk in OutboxEvent.objects.values_list("pk", flat=True)
    )
    relay_once(broker)

    # when the consumer subscribes
    with RunningConsumer(followups) as runner:
        # then it answers every delivery with success (the created event: not wanted; the
        # second copies: duplicates) and applies each update once
        assert sidecar.wait_for(lambda: len(sidecar.answered(followups.name)) == 6)
        assert {answer.status for answer in sidecar.answered(followups.name)} == {"success"}
        assert runner.handled == 6
    assert followups_of(event_ids) == [1, 1]


def test_a_poison_event_is_dead_lettered_and_dropped_to_the_dead_letter_topic(
    sidecar, followups, user_id
):
    # given a poison update followed by a good one
    event_ids = updates_of(user_id, ["poison", "good"])
    relay_once(DaprBroker(pubsub_name="pubsub"))

    with RunningConsumer(followups):
        assert sidecar.wait_for(lambda: len(sidecar.answered(followups.name)) == 3)

    # then the poison one was answered "drop" after five attempts, is in the dead-letter table
    # and on the consumer's dead-letter topic; the good one was applied
    statuses = {answer.message_id: answer.status for answer in sidecar.answered(followups.name)}
    assert statuses[event_ids[0]] == "drop" and statuses[event_ids[1]] == "success"
    assert support.attempts[event_ids[0]] == 5
    assert str(DeadLetter.objects.get().event_id) == event_ids[0]
    [(topic, message, _)] = sidecar.dead_lettered
    assert topic == followups.dead_letters_topic == "task-events-dlq"
    assert message.id == event_ids[0]
    assert [m.id for m in sidecar.messages("task-events-dlq")] == [event_ids[0]]
    assert followups_of(event_ids) == [0, 1]


def test_an_invalid_message_is_dead_lettered_and_dropped(sidecar, followups):
    # given garbage and a wrongly shaped envelope on the topic
    with DaprClient() as client:
        client.publish_event(
            "pubsub", "task-events", data="not json", data_content_type="text/plain"
        )
        client.publish_event(
            "pubsub",
            "task-events",
            data=json.dumps({"event_id": str(uuid.uuid4()), "event_type": "task.updated"}),
            data_content_type="application/json",
        )

    # when the consumer reads them, then both are answered "drop" and kept as dead letters
    with RunningConsumer(followups):
        assert sidecar.wait_for(lambda: len(sidecar.answered(followups.name)) == 2)
    assert [answer.status for answer in sidecar.answered(followups.name)] == ["drop", "drop"]
    letters = list(DeadLetter.objects.order_by("id"))
    assert letters[0].raw == "not json" and letters[0].envelope is None
    assert "Not JSON" in letters[0].error
    assert letters[1].envelope["event_type"] == "task.updated"
    assert "payload" in letters[1].error
    assert len(sidecar.messages("task-events-dlq")) == 2


def test_a_database_outage_answers_retry_and_the_redelivery_applies(sidecar, followups, user_id):
    # given a handler whose first call finds the database connection gone
    [event_id] = updates_of(user_id, ["a"])
    relay_once(DaprBroker(pubsub_name="pubsub"))
    broke = []
    real = followups.handle

    def handle(event):
        if not broke:
            broke.append(True)
            connection.close()
            raise InterfaceError("connection already closed")
        real(event)

    support.unregister(followups.name)
    patched = support.register(dataclasses.replace(followups, handle=handle))

    # when the consumer runs
    with RunningConsumer(patched):
        assert sidecar.wait_for(lambda: len(sidecar.answered(patched.name)) == 3)

    # then the event was answered retry, redelivered, and applied once
    statuses = [
        answer.status for answer in sidecar.answered(patched.name) if answer.message_id == event_id
    ]
    assert statuses == ["retry", "success"]
    assert followups_of([event_id]) == [1]
    assert not DeadLetter.objects.exists()
