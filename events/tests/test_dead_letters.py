"""The ``dead-letters`` consumer: what reaches ``*-dlq`` goes to the dead-letter table, once."""

from __future__ import annotations

import json
import threading

import pytest
from django.core.management import CommandError, call_command
from prometheus_client import REGISTRY

from events.brokers.dapr import DaprBroker
from events.consumers import all_consumers, get_consumer
from events.dead_letters import CONSUMER_NAME, DEAD_LETTER_TOPICS, dead_letter_from_topic
from events.models import DeadLetter, OutboxEvent
from events.relay import relay_once
from events.runners import DaprConsumerRunner, runner_for
from events.services import dead_letter_replay, processed_event_claim
from events.tests import support
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)


def _topic_count(topic: str) -> float:
    labels = {"topic": topic}
    return REGISTRY.get_sample_value("todo_dead_letter_topic_events_total", labels) or 0.0


class Running:
    """A runner in a thread, stopped and joined on exit."""

    def __init__(self, runner):
        self.runner = runner
        self.thread = threading.Thread(target=runner.run)

    def __enter__(self):
        self.thread.start()
        return self.runner

    def __exit__(self, *exc):
        self.runner.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _envelope_of_new_task(user_id: str) -> dict:
    services.task_create(user_id=user_id, title="lost in Kafka")
    return OutboxEvent.objects.get(user_id=user_id).envelope


def test_it_reads_every_dead_letter_topic_the_chart_names():
    consumer = get_consumer(CONSUMER_NAME)

    assert consumer.topics == ("task-events-dlq", "reminders-dlq", "task-updates-dlq")
    assert consumer.topics == DEAD_LETTER_TOPICS
    assert consumer.in_process is False  # the embedded mode has no dead-letter topics


def test_an_event_dapr_gave_up_on_is_kept_for_each_consumer_that_missed_it(user_id):
    # given a task.created that audit never processed and that recurrence does not want
    envelope = _envelope_of_new_task(user_id)
    data = json.dumps(envelope).encode()

    added = dead_letter_from_topic(topic="task-events-dlq", data=data)
    again = dead_letter_from_topic(topic="task-events-dlq", data=data)

    (letter,) = DeadLetter.objects.all()
    assert (added, again) == (1, 0)
    assert (letter.consumer, letter.topic, str(letter.event_id)) == (
        "audit",
        "task-events",
        envelope["event_id"],
    )
    assert letter.event_type == "task.created"
    assert letter.envelope == envelope
    assert "task-events-dlq" in letter.error


def test_a_consumer_that_processed_the_event_gets_no_letter(user_id):
    envelope = _envelope_of_new_task(user_id)
    processed_event_claim(consumer="audit", event_ids=[envelope["event_id"]])

    added = dead_letter_from_topic(topic="task-events-dlq", data=json.dumps(envelope).encode())

    assert added == 0
    assert not DeadLetter.objects.exists()


def test_a_letter_the_consumer_wrote_itself_is_left_as_it_is(user_id):
    envelope = _envelope_of_new_task(user_id)
    DeadLetter.objects.create(
        consumer="audit", topic="task-events", event_id=envelope["event_id"], error="boom"
    )

    dead_letter_from_topic(topic="task-events-dlq", data=json.dumps(envelope).encode())

    (letter,) = DeadLetter.objects.all()
    assert (letter.error, letter.attempts) == ("boom", 1)


def test_a_message_that_is_no_envelope_is_kept_raw():
    added = dead_letter_from_topic(topic="reminders-dlq", data=b"\xffnot json")

    (letter,) = DeadLetter.objects.all()
    assert added == 1
    assert (letter.consumer, letter.topic, letter.event_id) == ("", "reminders", None)
    assert letter.raw.endswith("not json")
    assert "invalid envelope" in letter.error


def test_a_recorded_letter_replays_through_its_consumer(user_id):
    envelope = _envelope_of_new_task(user_id)
    dead_letter_from_topic(topic="task-events-dlq", data=json.dumps(envelope).encode())
    (letter,) = DeadLetter.objects.all()

    assert dead_letter_replay(dead_letter_id=letter.pk) == "applied"
    assert dead_letter_replay(dead_letter_id=letter.pk) == "duplicate"


@pytest.mark.usefixtures("relay_publishes")
def test_from_kafka_to_the_table_through_the_sidecar(sidecar, user_id, fast_retries):
    # given a consumer that drops a poison event (its sidecar forwards it to task-events-dlq)
    # and an event Dapr gave up on by itself, published twice to the dead-letter topic
    followups = support.register_followups(max_attempts=1)
    try:
        support.updates_of(user_id, ["poison"])
        relay_once(DaprBroker(pubsub_name="pubsub"))
        # (audit, the other consumer of task-events, did its part)
        processed_event_claim(
            consumer="audit", event_ids=OutboxEvent.objects.values_list("event_id", flat=True)
        )
        lost = OutboxEvent.objects.filter(event_type="task.created").first().envelope
        for _ in range(2):
            sidecar.publish(
                pubsub_name="pubsub",
                topic="task-updates-dlq",
                data=json.dumps(lost).encode(),
                content_type="application/json",
                metadata={"cloudevent.id": lost["event_id"]},
            )
        before = {topic: _topic_count(topic) for topic in DEAD_LETTER_TOPICS}

        # when the consumer and the dead-letter reader run
        # (until every message is answered for good: stopped after the first answer, the
        # consumer could leave the poison's unsent, and the sidecar would forward nothing)
        with Running(DaprConsumerRunner(followups)):
            assert sidecar.wait_for(
                lambda: (
                    sidecar.answered(followups.name)
                    and sidecar.pending(followups.name, "task-events") == 0
                ),
                timeout=45,
            )
        reader = runner_for(get_consumer(CONSUMER_NAME), broker="dapr")
        with Running(reader):
            assert sidecar.wait_for(
                lambda: len(sidecar.answered(CONSUMER_NAME)) == 3 and reader.healthy.is_set(),
                timeout=45,
            )
    finally:
        support.unregister(support.FOLLOWUPS)

    # then the poison event has the one letter its consumer wrote, the lost one a letter for
    # the consumer of task-updates that missed it, and every message was counted by topic
    missed = {consumer.name for consumer in all_consumers() if consumer.topic == "task-updates"}
    letters = {(letter.consumer, letter.event_type) for letter in DeadLetter.objects.all()}
    assert "realtime" in missed
    assert letters == {(followups.name, "task.updated")} | {
        (name, "task.created") for name in missed
    }
    assert [answer.status for answer in sidecar.answered(CONSUMER_NAME)] == ["success"] * 3
    assert _topic_count("task-events-dlq") - before["task-events-dlq"] == 1
    assert _topic_count("task-updates-dlq") - before["task-updates-dlq"] == 2


def test_the_embedded_mode_has_no_dead_letter_topics_to_read(settings):
    settings.EVENTS_BROKER = "embedded"

    with pytest.raises(CommandError, match="the embedded mode has none"):
        call_command("run_consumer", CONSUMER_NAME, "--metrics-port", "0")
