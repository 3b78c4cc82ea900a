"""The ``dead-letters`` consumer: what Dapr gave up on, into the dead-letter table.

With Dapr, a message a subscription cannot take ends on its dead-letter topic (``<topic>-dlq``):
one our runner dropped after recording its dead letter, or one Dapr stopped redelivering on its
own (the resiliency policy's retries spent while the database was down). Nothing would read it
there. This consumer subscribes to every dead-letter topic and records each message in the
``DeadLetter`` table, under each consumer of the original topic that wanted the event and has
not processed it (its idempotency key is missing), so the admin's replay and
``replay_dead_letter`` work for Kafka as for the embedded mode. A consumer that was only slow,
not failed, gets a letter whose replay finds the event done ("duplicate"): harmless. A row that
exists for the consumer and event is left as it is, so a redelivered message adds nothing.

The embedded mode has no dead-letter topics: a consumer that gives up writes its dead letter
straight to the table, so this consumer runs with Dapr only
(``python manage.py run_consumer dead-letters``).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid

from django.db import DatabaseError, transaction
from django.utils import timezone

from core.users import USER_ID_MAX_LENGTH
from events import metrics, topics
from events.consumers import Consumer, all_consumers, register
from events.models import NAME_MAX_LENGTH, DeadLetter, ProcessedEvent
from events.processing import database_down
from events.runners import DaprConsumerRunner
from events.schemas import InvalidEnvelope, parse_envelope

logger = logging.getLogger(__name__)

CONSUMER_NAME = "dead-letters"
DEAD_LETTER_SUFFIX = "-dlq"
DEAD_LETTER_TOPICS = tuple(
    f"{topic}{DEAD_LETTER_SUFFIX}"
    for topic in (topics.TASK_EVENTS, topics.REMINDERS, topics.TASK_UPDATES)
)


def _failed_in(dead_letter_topic: str, event_id: uuid.UUID | None, event_type: str) -> list[str]:
    """The consumers this message may have failed in: those whose dead letters go to
    ``dead_letter_topic``, that want its type and hold no idempotency key for it."""
    candidates = [
        consumer.name
        for consumer in all_consumers()
        if consumer.name != CONSUMER_NAME
        and consumer.dead_letters_topic == dead_letter_topic
        and (not event_type or consumer.wants(event_type))
    ]
    if event_id is None or not candidates:
        return candidates
    done = set(
        ProcessedEvent.objects.filter(consumer__in=candidates, event_id=event_id).values_list(
            "consumer", flat=True
        )
    )
    return [name for name in candidates if name not in done]


def original_topic(dead_letter_topic: str) -> str:
    return dead_letter_topic.removesuffix(DEAD_LETTER_SUFFIX)


def dead_letter_from_topic(*, topic: str, data: bytes) -> int:
    """Record one message read from dead-letter ``topic``. Returns how many dead letters it
    added (0: every consumer that wanted it has processed it, or already has its letter)."""
    text = data.decode("utf-8", errors="replace")
    message: dict | None = None
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope as exc:
        envelope = None
        message = _json_object(text)
        error = f"invalid envelope on {topic}: {exc}"
    else:
        error = f"Dapr gave up on this event and forwarded it to {topic}."
    event_id = envelope.event_id if envelope else _uuid_or_none(message)
    event_type = envelope.event_type if envelope else str((message or {}).get("event_type", ""))
    consumers = _failed_in(topic, event_id, event_type) if envelope else []
    if not consumers and envelope is None:
        consumers = [""]  # no consumer to blame: kept, so that nothing is lost
    now = timezone.now()
    user_id = envelope.user_id if envelope else str((message or {}).get("user_id", ""))
    with transaction.atomic():
        if event_id is not None:
            kept = DeadLetter.objects.filter(consumer__in=consumers, event_id=event_id)
            consumers = [
                name
                for name in consumers
                if name not in set(kept.values_list("consumer", flat=True))
            ]
        letters = [
            DeadLetter(
                consumer=name,
                topic=original_topic(topic),
                event_id=event_id,
                event_type=event_type[:NAME_MAX_LENGTH],
                user_id=user_id[:USER_ID_MAX_LENGTH],
                envelope=envelope.model_dump(mode="json") if envelope else message,
                raw="" if envelope or message is not None else text,
                error=error,
                attempts=1,
                created_at=now,
                last_failed_at=now,
            )
            for name in consumers
        ]
        # Two readers of the same message at once: the unique constraint keeps one row.
        DeadLetter.objects.bulk_create(letters, ignore_conflicts=True)
    added = len(letters)
    if added:
        logger.error("dead-letter topic %s: %s recorded for %s", topic, event_id, consumers)
    return added


def _json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _uuid_or_none(message: dict | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((message or {}).get("event_id")))
    except ValueError:
        return None


class _DeadLetterSubscription(DaprConsumerRunner):
    """One dead-letter topic's subscription (with no dead-letter topic of its own: a message
    that cannot be recorded now is redelivered)."""

    def handle_messages(self, messages: list) -> list[str]:
        answers = []
        for message in messages:
            topic = message.topic() or self.topic
            try:
                dead_letter_from_topic(topic=topic, data=message.raw_data() or b"")
            except DatabaseError as exc:
                if not database_down(exc):
                    logger.exception("dead-letter topic %s: cannot record a message", topic)
                answers.append(self._database_down(exc))
                continue
            metrics.DEAD_LETTER_TOPIC_EVENTS.labels(topic=topic).inc()
            self.handled += 1
            answers.append("success")
        return answers


class _AllHealthy:
    """``is_set`` when every subscription is (what ``/readyz`` asks)."""

    def __init__(self, subscriptions: list[DaprConsumerRunner]):
        self.subscriptions = subscriptions

    def is_set(self) -> bool:
        return all(subscription.healthy.is_set() for subscription in self.subscriptions)


class DeadLetterTopicsRunner:
    """A subscription per dead-letter topic, each in its own thread."""

    def __init__(self, consumer: Consumer, *, dapr: bool):
        if not dapr:
            raise ValueError(
                f"{consumer.name} reads Dapr's dead-letter topics; the embedded mode has none "
                "(its dead letters go straight to the table)."
            )
        self.consumer = consumer
        self.subscriptions: list[DaprConsumerRunner] = [
            _DeadLetterSubscription(consumer, topic=topic, dead_letter_topic="")
            for topic in consumer.topics
        ]
        self.healthy = _AllHealthy(self.subscriptions)

    @property
    def handled(self) -> int:
        return sum(subscription.handled for subscription in self.subscriptions)

    def stop(self) -> None:
        for subscription in self.subscriptions:
            subscription.stop()

    def run(self, client=None) -> None:
        threads = [
            threading.Thread(
                target=subscription.run,
                args=(client,),
                name=f"{self.consumer.name}-{subscription.topic}",
            )
            for subscription in self.subscriptions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _not_applied(envelope) -> None:
    raise TypeError(f"{CONSUMER_NAME} records messages; it applies no envelope")


def register_dead_letter_consumer() -> Consumer:
    return register(
        Consumer(
            name=CONSUMER_NAME,
            topic=DEAD_LETTER_TOPICS[0],
            more_topics=DEAD_LETTER_TOPICS[1:],
            handle=_not_applied,
            in_process=False,
            writes_for_users=False,
            runner=DeadLetterTopicsRunner,
        )
    )
