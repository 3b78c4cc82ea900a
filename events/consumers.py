"""Consumers: a name, the topic it reads, the event types it wants and a handler.

Apps register theirs in ``AppConfig.ready``::

    from events.consumers import register_consumer

    @register_consumer("recurrence", topic=topics.TASK_EVENTS, event_types={"task.completed"})
    def create_next_instance(event):
        ...  # call services; runs in the transaction that records (consumer, event_id)

``python manage.py run_consumer <name>`` runs one of them in its own process (a Dapr streaming
subscription, or the embedded log); in the embedded mode the server runs every consumer whose
``in_process`` is true. The handler runs inside a transaction together with the idempotency key,
so its database effect happens once per event; an effect outside the database (a WebSocket frame,
an e-mail) belongs in ``transaction.on_commit``.

A handler raises to say "failed": the event is retried with back-off and, after
``max_attempts``, dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from events import conf, topics
from events.schemas import Envelope

Handler = Callable[[Envelope], None]
BatchHandler = Callable[[list[Envelope]], None]


class UnknownConsumer(LookupError):
    pass


@dataclass(frozen=True)
class Consumer:
    name: str
    topic: str
    handle: Handler
    event_types: frozenset[str] | None = None
    # Optional: apply many events at once (in one transaction); ``handle`` stays the fallback.
    handle_batch: BatchHandler | None = None
    max_attempts: int | None = None
    in_process: bool = True
    dead_letter_topic: str | None = None
    # Its handlers write through services that take users' locks (see ``core.locking``); a
    # batch then takes them all first, in one order. False for consumers that only read
    # events or write rows no user's lock guards, so they never hold writers up.
    writes_for_users: bool = True
    # Further topics it reads besides ``topic`` (each a subscription of its own).
    more_topics: tuple[str, ...] = ()
    # A runner of its own, for a consumer that does not apply envelopes through ``handle``
    # (the dead-letter reader): called as ``runner(consumer, dapr=<bool>)``.
    runner: Callable[..., Any] | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.topic, *self.more_topics)

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    @property
    def attempts(self) -> int:
        return self.max_attempts or conf.get("EVENTS_CONSUMER_MAX_ATTEMPTS")

    @property
    def dead_letters_topic(self) -> str:
        """Where Dapr sends what this consumer drops or cannot take."""
        return self.dead_letter_topic or f"{self.topic}-dlq"


_registry: dict[str, Consumer] = {}


def register(consumer: Consumer) -> Consumer:
    for topic in consumer.topics:
        topics.check_name(topic)
    if not consumer.name or not topics.VALID_NAME.match(consumer.name):
        raise ValueError(f"Invalid consumer name {consumer.name!r}")
    existing = _registry.get(consumer.name)
    if existing is not None and existing != consumer:
        raise ValueError(f"A consumer named {consumer.name!r} is already registered")
    _registry[consumer.name] = consumer
    return consumer


def register_consumer(
    name: str,
    *,
    topic: str,
    event_types: Iterable[str] | None = None,
    handle_batch: BatchHandler | None = None,
    max_attempts: int | None = None,
    in_process: bool = True,
    dead_letter_topic: str | None = None,
    writes_for_users: bool = True,
) -> Callable[[Handler], Handler]:
    def decorate(handle: Handler) -> Handler:
        register(
            Consumer(
                name=name,
                topic=topic,
                handle=handle,
                event_types=frozenset(event_types) if event_types is not None else None,
                handle_batch=handle_batch,
                max_attempts=max_attempts,
                in_process=in_process,
                dead_letter_topic=dead_letter_topic,
                writes_for_users=writes_for_users,
            )
        )
        return handle

    return decorate


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get_consumer(name: str) -> Consumer:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownConsumer(f"No consumer named {name!r} (registered: {known}).") from None


def all_consumers() -> list[Consumer]:
    return [_registry[name] for name in sorted(_registry)]
