"""Applying events to a consumer, the same way whatever brought them (Dapr or the embedded log).

One event is applied in one transaction that also inserts ``(consumer, event_id)``: a second
delivery of the same event finds the key and changes nothing. A handler that raises is retried
with doubling back-off; after the consumer's ``max_attempts`` the event becomes a dead letter and
the consumer moves on. A broken database connection is not the event's fault: it is raised to the
runner, which backs off and tries again without counting an attempt.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from core.locking import lock_users
from core.logging import log_context
from events import conf, metrics
from events.consumers import Consumer
from events.schemas import Envelope
from events.services import dead_letter_record, processed_event_claim

logger = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"


class DatabaseUnavailable(Exception):
    """The database connection failed: retry later, the event is not at fault."""


class Interrupted(Exception):
    """Shutdown was requested while an event was waiting for its next attempt."""


class EventFailed(Exception):
    """A batch failed (the batch is then applied one by one). ``event_id`` names the event whose
    handler failed, or is None when no one event is to blame (a batch handler, an invalid row)."""

    def __init__(self, event_id):
        super().__init__(f"handler failed on {event_id}" if event_id else "batch failed")
        self.event_id = event_id


class Superseded(Exception):
    """Raised by ``in_same_transaction`` when another process already moved past the event:
    the transaction is rolled back and the event is left to that process."""


def database_down(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        try:
            return not connection.is_usable()
        except Exception:
            return True
    return False


def apply_in_transaction(consumer: Consumer, envelope: Envelope) -> Outcome:
    """Inside the caller's transaction: claim the idempotency key, then run the handler."""
    if not consumer.wants(envelope.event_type):
        return Outcome.SKIPPED
    if not processed_event_claim(consumer=consumer.name, event_ids=[envelope.event_id]):
        return Outcome.DUPLICATE
    with log_context(**_context(consumer, envelope)):
        consumer.handle(envelope)
    return Outcome.APPLIED


def apply_batch_in_transaction(consumer: Consumer, envelopes: list[Envelope]) -> dict[Outcome, int]:
    """The fast path: every key in one statement, then the handlers. Raises if any handler
    fails (the caller rolls back and applies the batch one event at a time)."""
    wanted = [envelope for envelope in envelopes if consumer.wants(envelope.event_type)]
    fresh_ids = processed_event_claim(
        consumer=consumer.name, event_ids=[envelope.event_id for envelope in wanted]
    )
    fresh: list[Envelope] = []
    for envelope in wanted:
        if envelope.event_id in fresh_ids:
            fresh.append(envelope)
            fresh_ids.discard(envelope.event_id)
    if fresh:
        # Handlers that write for users lock them. Taking every user's lock first, in one sorted
        # order (``lock_users`` sorts), keeps two consumers' batches from locking two users in
        # opposite orders (a deadlock). The events stay in log order.
        if consumer.writes_for_users:
            lock_users(envelope.user_id for envelope in fresh)
        if consumer.handle_batch is not None:
            with log_context(consumer=consumer.name):
                consumer.handle_batch(fresh)
        else:
            for envelope in fresh:
                with log_context(**_context(consumer, envelope)):
                    try:
                        consumer.handle(envelope)
                    except Exception as exc:
                        if database_down(exc):
                            raise
                        metrics.CONSUMER_EVENTS.labels(
                            consumer=consumer.name, outcome="error"
                        ).inc()
                        logger.warning(
                            "%s failed on %s (attempt 1 of %d): %r",
                            consumer.name,
                            envelope.event_type,
                            consumer.attempts,
                            exc,
                        )
                        raise EventFailed(envelope.event_id) from exc
    return {
        Outcome.APPLIED: len(fresh),
        Outcome.DUPLICATE: len(wanted) - len(fresh),
        Outcome.SKIPPED: len(envelopes) - len(wanted),
    }


def count(consumer: Consumer, outcomes: dict[Outcome, int]) -> None:
    for outcome, number in outcomes.items():
        if number:
            metrics.CONSUMER_EVENTS.labels(consumer=consumer.name, outcome=outcome.value).inc(
                number
            )


def deliver(
    consumer: Consumer,
    envelope: Envelope,
    *,
    topic: str,
    stop: threading.Event | None = None,
    in_same_transaction: Callable[[], None] | None = None,
    attempts_made: int = 0,
) -> Outcome:
    """Apply one event with retries; dead-letter it after the last attempt.

    ``in_same_transaction`` runs in the transaction that applies (or dead-letters) the event;
    the embedded runner moves its cursor there. Raises ``DatabaseUnavailable`` when the
    connection is gone and ``Interrupted`` when ``stop`` is set between attempts.
    """
    delay = conf.get("EVENTS_RETRY_INITIAL_SECONDS")
    attempt = attempts_made
    while True:
        attempt += 1
        try:
            with transaction.atomic():
                outcome = apply_in_transaction(consumer, envelope)
                if in_same_transaction is not None:
                    in_same_transaction()
        except Superseded:
            raise
        except Exception as exc:
            if database_down(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            metrics.CONSUMER_EVENTS.labels(consumer=consumer.name, outcome="error").inc()
            with log_context(**_context(consumer, envelope)):
                logger.warning(
                    "%s failed on %s (attempt %d of %d): %r",
                    consumer.name,
                    envelope.event_type,
                    attempt,
                    consumer.attempts,
                    exc,
                )
            if attempt >= consumer.attempts:
                return _give_up(consumer, envelope, topic, exc, attempt, in_same_transaction)
            if stop is not None:
                if stop.wait(delay):
                    raise Interrupted() from exc
            else:
                time.sleep(delay)
            delay = min(delay * 2, conf.get("EVENTS_RETRY_MAX_SECONDS"))
            continue
        count(consumer, {outcome: 1})
        metrics.observe_delay(consumer.name, [envelope.timestamp])
        return outcome


def _give_up(consumer, envelope, topic, exc, attempts, in_same_transaction) -> Outcome:
    error = "".join(traceback.format_exception(exc))
    try:
        with transaction.atomic():
            dead_letter_record(
                consumer=consumer.name,
                topic=topic,
                envelope=envelope,
                error=error,
                attempts=attempts,
            )
            if in_same_transaction is not None:
                in_same_transaction()
    except DatabaseError as db_exc:
        if database_down(db_exc):
            raise DatabaseUnavailable(str(db_exc)) from db_exc
        raise
    count(consumer, {Outcome.DEAD_LETTERED: 1})
    metrics.observe_delay(consumer.name, [envelope.timestamp])
    return Outcome.DEAD_LETTERED


def _context(consumer: Consumer, envelope: Envelope) -> dict:
    payload = envelope.payload
    return {
        "consumer": consumer.name,
        "event_id": envelope.event_id,
        "user_id": envelope.user_id,
        "task_id": getattr(payload, "task_id", None),
    }
