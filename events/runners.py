"""Running consumers and relays: one loop per consumer, on either transport.

- ``EmbeddedConsumerRunner`` reads the embedded log (the committed outbox rows, ``events.log``)
  with a cursor per consumer. A batch is applied in one transaction with its cursor move; if a
  handler fails, the batch is rolled back and replayed one event at a time, so the failing event
  retries and at worst becomes a dead letter while the events behind it go on.
- ``DaprConsumerRunner`` reads a Dapr streaming subscription (``DaprClient.subscribe``) and answers
  each message: success (applied, a duplicate, or not wanted), retry (the database is down, or
  shutdown interrupted the retries) or drop (dead-lettered: Dapr forwards it to the consumer's
  dead-letter topic).
- ``WorkerGroup`` runs the relay and consumers as threads (the embedded server, the benchmark).

Every runner stops gracefully: ``stop()`` lets the event in hand finish, then the loop ends.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from contextlib import asynccontextmanager
from typing import cast

from django.db import DatabaseError, connection, transaction

from events import conf, log, metrics, wakeup
from events.consumers import Consumer, all_consumers
from events.processing import (
    DatabaseUnavailable,
    EventFailed,
    Interrupted,
    Outcome,
    Superseded,
    apply_batch_in_transaction,
    count,
    database_down,
    deliver,
)
from events.schemas import InvalidEnvelope, parse_envelope
from events.services import dead_letter_record

logger = logging.getLogger(__name__)


class EmbeddedConsumerRunner:
    def __init__(self, consumer: Consumer, *, batch_size: int | None = None):
        self.consumer = consumer
        self.batch_size = batch_size or conf.get("EVENTS_CONSUMER_BATCH_SIZE")
        self.stop_event = threading.Event()
        self.healthy = threading.Event()
        self.handled = 0
        self._cursor: log.CursorState | None = None  # as this runner last left it

    def stop(self) -> None:
        self.stop_event.set()
        # A loop waiting for work stops now, not after the poll interval (the others woken
        # with it look once more and wait again).
        wakeup.wake_local(wakeup.PUBLISHED)

    # -- the log -----------------------------------------------------------------------------

    def _read(self, cursor, limit: int) -> log.Batch:
        """The consumer's cursor, locked until the transaction ends, and up to ``limit`` rows
        after it (``events.log.read``). The commit waits for the disk: its effects are seen
        outside the database at once (frames, recorded events), so a crash must not lose it."""
        return log.read(
            cursor,
            consumer=self.consumer.name,
            topic=self.consumer.topic,
            limit=limit,
            expected=self._cursor,
        )

    def _advance(self, cursor, batch: log.Batch, limit: int, *, check: bool = False) -> bool:
        moved = log.advance(
            cursor, consumer=self.consumer.name, batch=batch, limit=limit, check=check
        )
        # Kept for the next read, which checks it against the row (a rollback makes it stale).
        self._cursor = moved
        return moved is not None

    def _with_cursor(self, attempt):
        """Run ``attempt`` (a transaction that reads the log); a consumer without a cursor
        gets one at the log's start, and the attempt runs again."""
        try:
            return attempt()
        except log.CursorMissing:
            with connection.cursor() as cursor:
                log.cursor_create(cursor, consumer=self.consumer.name)
            return attempt()

    # -- one poll ------------------------------------------------------------------------------

    def poll(self) -> int:
        """Apply the next batch; returns how many log rows were consumed (0: nothing new)."""
        total = 0
        while True:
            consumed, finished_span = self._with_cursor(self._poll_once)
            total += consumed
            # A span's snapshot is older than the wakes this loop has cleared: once the span is
            # read, what committed after it is read at once, not on the next wake.
            if not finished_span:
                return total

    @property
    def in_span(self) -> bool:
        """The cursor is within a span, with more to read at once."""
        return self._cursor is not None and self._cursor.span_snapshot is not None

    def _poll_once(self) -> tuple[int, bool]:
        """One batch in one transaction: how many rows it consumed, and whether it was the end
        of a span."""
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                batch = self._read(cursor, self.batch_size)
                if not batch.rows:
                    self._advance(cursor, batch, self.batch_size)
                    return 0, batch.in_span
                try:
                    envelopes = [parse_envelope(row.envelope_json) for row in batch.rows]
                    outcomes = apply_batch_in_transaction(self.consumer, envelopes)
                except EventFailed:
                    raise
                except Exception as exc:
                    # An invalid envelope, or a batch handler that failed: no one event to blame.
                    if database_down(exc):
                        raise
                    raise EventFailed(None) from exc
                self._advance(cursor, batch, self.batch_size)
        except EventFailed as failed:
            return self._one_at_a_time(len(batch.rows), failed_event_id=failed.event_id), False
        except DatabaseError as exc:
            if database_down(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise
        count(self.consumer, outcomes)
        metrics.observe_delay(self.consumer.name, [envelope.timestamp for envelope in envelopes])
        self.handled += len(batch.rows)
        return len(batch.rows), batch.in_span and len(batch.rows) < self.batch_size

    def _read_one(self) -> log.Batch:
        with transaction.atomic(), connection.cursor() as cursor:
            batch = self._read(cursor, 1)
            if not batch.rows:  # the end of a span is recorded now
                self._advance(cursor, batch, 1)
            return batch

    def _one_at_a_time(self, limit: int, *, failed_event_id=None) -> int:
        """After a failed batch: each event in its own transaction, with retries."""
        done = 0
        while done < limit and not self.stop_event.is_set():
            batch = self._with_cursor(self._read_one)
            if not batch.rows:
                if batch.in_span:
                    continue  # read on after the span
                break
            try:
                self._deliver_row(batch, failed_event_id=failed_event_id)
            except Superseded:
                logger.info(
                    "%s: another process moved past %s", self.consumer.name, batch.rows[0].id
                )
            done += 1
        self.handled += done
        return done

    def _deliver_row(self, batch: log.Batch, *, failed_event_id=None) -> None:
        (row,) = batch.rows

        def advance():
            with connection.cursor() as cursor:
                if not self._advance(cursor, batch, 1, check=True):
                    raise Superseded()

        try:
            envelope = parse_envelope(row.envelope_json)
        except InvalidEnvelope as exc:
            with transaction.atomic():
                dead_letter_record(
                    consumer=self.consumer.name,
                    topic=self.consumer.topic,
                    error=f"invalid envelope: {exc}",
                    attempts=1,
                    message=_json_object(row.envelope_json),
                    raw=row.envelope_json,
                )
                advance()
            count(self.consumer, {Outcome.DEAD_LETTERED: 1})
            return
        deliver(
            self.consumer,
            envelope,
            topic=self.consumer.topic,
            stop=self.stop_event,
            in_same_transaction=advance,
            # The failed batch was this event's first attempt.
            attempts_made=1 if envelope.event_id == failed_event_id else 0,
        )

    def update_lag_metric(self) -> None:
        with connection.cursor() as cursor:
            unread = log.unread_count(
                cursor, consumer=self.consumer.name, topic=self.consumer.topic
            )
        metrics.CONSUMER_LAG.labels(consumer=self.consumer.name).set(unread)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        wake = wakeup.waiter(wakeup.PUBLISHED)
        initial = conf.get("EVENTS_RETRY_INITIAL_SECONDS")
        delay = initial
        last_lag = 0.0
        logger.info(
            "consumer %s reading %s (embedded log)", self.consumer.name, self.consumer.topic
        )
        try:
            while not self.stop_event.is_set():
                wake.clear()
                try:
                    consumed = self.poll()
                    if time.monotonic() - last_lag > 1.0:
                        self.update_lag_metric()
                        last_lag = time.monotonic()
                except (DatabaseUnavailable, DatabaseError) as exc:
                    self.healthy.clear()
                    logger.warning(
                        "consumer %s: database unavailable (%s); retrying in %.2fs",
                        self.consumer.name,
                        exc,
                        delay,
                    )
                    connection.close()
                    if self.stop_event.wait(delay):
                        break
                    delay = min(delay * 2, conf.get("EVENTS_RETRY_MAX_SECONDS"))
                    continue
                except Interrupted:
                    break
                delay = initial
                self.healthy.set()
                if consumed >= self.batch_size or self.in_span:
                    continue  # a full batch, or a span: there is more; otherwise wait for a wake
                if not self.stop_event.is_set():  # stop() sets it before it wakes us
                    wake.wait(conf.get("EVENTS_POLL_INTERVAL_SECONDS"))
        finally:
            wakeup.forget(wakeup.PUBLISHED, wake)
            connection.close()
            logger.info("consumer %s stopped after %d events", self.consumer.name, self.handled)


def _json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class DaprConsumerRunner:
    """A Dapr streaming subscription for one consumer, on its topic (or ``topic``, one of its
    ``topics``), whose failures Dapr forwards to ``dead_letter_topic`` (its own by default;
    empty: none)."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        pubsub_name: str | None = None,
        topic: str | None = None,
        dead_letter_topic: str | None = None,
    ):
        self.consumer = consumer
        self.topic = topic or consumer.topic
        self.dead_letter_topic = (
            consumer.dead_letters_topic if dead_letter_topic is None else dead_letter_topic
        )
        self.pubsub_name = pubsub_name or conf.get("DAPR_PUBSUB_NAME")
        self.stop_event = threading.Event()
        self.healthy = threading.Event()
        self.handled = 0
        self._lock = threading.Lock()
        self._busy = False
        self._subscription = None
        self._db_delay = conf.get("EVENTS_RETRY_INITIAL_SECONDS")

    def stop(self) -> None:
        with self._lock:
            self.stop_event.set()
            idle = not self._busy
            subscription = self._subscription
        if idle and subscription is not None:
            subscription.close()

    def handle_messages(self, messages: list) -> list[str]:
        """Apply the messages at hand, in one transaction when they all succeed (one by one,
        with retries, when one fails). Returns one answer per message, in order."""
        answers: list[str | None] = [None] * len(messages)
        valid = []
        for index, message in enumerate(messages):
            raw = message.raw_data() or b""
            try:
                envelope = parse_envelope(raw)
            except InvalidEnvelope as exc:
                answers[index] = self._dead_letter_invalid(raw, exc)
                continue
            if message.id() and message.id() != str(envelope.event_id):
                logger.warning(
                    "CloudEvent id %s differs from event_id %s", message.id(), envelope.event_id
                )
            valid.append((index, envelope))
        failed_event_id = None
        if len(valid) > 1:
            try:
                with transaction.atomic():
                    outcomes = apply_batch_in_transaction(
                        self.consumer, [envelope for _, envelope in valid]
                    )
            except Exception as exc:
                if database_down(exc):
                    answer = self._database_down(exc)
                    return [given or answer for given in answers]
                # As the embedded runner does: the batch was the failing event's first attempt.
                failed_event_id = exc.event_id if isinstance(exc, EventFailed) else None
                logger.warning(
                    "%s: a batch of %d failed (%r); applying it one event at a time",
                    self.consumer.name,
                    len(valid),
                    exc,
                )
            else:
                count(self.consumer, outcomes)
                metrics.observe_delay(
                    self.consumer.name, [envelope.timestamp for _, envelope in valid]
                )
                for index, _ in valid:
                    answers[index] = "success"
                self.handled += len(valid)
                self._db_delay = conf.get("EVENTS_RETRY_INITIAL_SECONDS")
                return cast("list[str]", answers)  # every message has its answer now
        for index, envelope in valid:
            attempts_made = 1 if envelope.event_id == failed_event_id else 0
            answers[index] = self._deliver(messages[index], envelope, attempts_made=attempts_made)
        return cast("list[str]", answers)

    def _deliver(self, message, envelope, *, attempts_made: int = 0) -> str:
        try:
            outcome = deliver(
                self.consumer,
                envelope,
                topic=message.topic() or self.consumer.topic,
                stop=self.stop_event,
                attempts_made=attempts_made,
            )
        except DatabaseUnavailable as exc:
            return self._database_down(exc)
        except Interrupted:
            return "retry"
        self._db_delay = conf.get("EVENTS_RETRY_INITIAL_SECONDS")
        self.handled += 1
        return "drop" if outcome == Outcome.DEAD_LETTERED else "success"

    def _dead_letter_invalid(self, raw: bytes, exc: InvalidEnvelope) -> str:
        text = raw.decode("utf-8", errors="replace")
        try:
            dead_letter_record(
                consumer=self.consumer.name,
                topic=self.consumer.topic,
                error=f"invalid envelope: {exc}",
                attempts=1,
                message=_json_object(text),
                raw=text,
            )
        except DatabaseError as db_exc:
            return self._database_down(db_exc)
        count(self.consumer, {Outcome.DEAD_LETTERED: 1})
        return "drop"

    def _database_down(self, exc: Exception) -> str:
        self.healthy.clear()
        logger.warning(
            "consumer %s: database unavailable (%s); asking Dapr to redeliver in %.2fs",
            self.consumer.name,
            exc,
            self._db_delay,
        )
        connection.close()
        self.stop_event.wait(self._db_delay)
        self._db_delay = min(self._db_delay * 2, conf.get("EVENTS_RETRY_MAX_SECONDS"))
        return "retry"

    def _consume(self, subscription, response_type) -> None:
        """Read the stream in a helper thread; answer what is at hand, a batch at a time."""
        from dapr.common.pubsub.subscription import (
            StreamCancelledError,
            StreamInactiveError,
            StreamReconnectError,
        )

        inbox: queue.Queue = queue.Queue()
        end = object()

        def read():
            try:
                while not self.stop_event.is_set():
                    message = subscription.next_message()
                    if message is not None:
                        inbox.put(message)
            except (StreamInactiveError, StreamCancelledError):
                pass
            except StreamReconnectError as exc:
                self.healthy.clear()
                logger.warning("consumer %s: subscription lost: %s", self.consumer.name, exc)
            except Exception:
                logger.exception("consumer %s: subscription failed", self.consumer.name)
            finally:
                inbox.put(end)

        reader = threading.Thread(target=read, name=f"dapr-{self.consumer.name}", daemon=True)
        reader.start()
        limit = conf.get("EVENTS_CONSUMER_BATCH_SIZE")
        ended = False
        while not ended and not self.stop_event.is_set():
            try:
                first = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if first is end:
                break
            batch = [first]
            while len(batch) < limit:
                try:
                    more = inbox.get_nowait()
                except queue.Empty:
                    break
                if more is end:
                    ended = True
                    break
                batch.append(more)
            with self._lock:
                self._busy = True
            try:
                for message, answer in zip(batch, self.handle_messages(batch), strict=True):
                    subscription.respond(message, response_type(answer).status)
            finally:
                with self._lock:
                    self._busy = False

    def run(self, client=None) -> None:
        from dapr.clients.grpc._response import TopicEventResponse

        from events.brokers.dapr import dapr_client

        own_client = client is None
        client = client or dapr_client()
        logger.info(
            "consumer %s subscribing to %s/%s (dead letters: %s)",
            self.consumer.name,
            self.pubsub_name,
            self.topic,
            self.dead_letter_topic or "none",
        )
        try:
            while not self.stop_event.is_set():
                try:
                    subscription = client.subscribe(
                        pubsub_name=self.pubsub_name,
                        topic=self.topic,
                        metadata={"consumerID": self.consumer.name},
                        dead_letter_topic=self.dead_letter_topic or None,
                    )
                except Exception as exc:
                    self.healthy.clear()
                    logger.warning("consumer %s cannot subscribe: %s", self.consumer.name, exc)
                    self.stop_event.wait(1.0)
                    continue
                with self._lock:
                    self._subscription = subscription
                    stopping = self.stop_event.is_set()
                if stopping:
                    subscription.close()
                    break
                self.healthy.set()
                try:
                    self._consume(subscription, TopicEventResponse)
                finally:
                    with self._lock:
                        self._subscription = None
                    if self.stop_event.is_set():
                        _let_answers_leave(subscription)
                    subscription.close()
        finally:
            if own_client:
                client.close()
            connection.close()
            logger.info("consumer %s stopped after %d events", self.consumer.name, self.handled)


def _let_answers_leave(subscription, timeout: float = 1.0) -> None:
    """Before the stream closes (which cancels it at once), wait until the answers given are
    taken from the subscription's send queue, then a moment for gRPC to write them."""
    outgoing = getattr(subscription, "_send_queue", None)  # the SDK's queue of answers
    deadline = time.monotonic() + timeout
    while outgoing is not None and not outgoing.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def runner_for(consumer: Consumer, *, broker: str | None = None):
    dapr = (broker or conf.get("EVENTS_BROKER")) == "dapr"
    if consumer.runner is not None:
        return consumer.runner(consumer, dapr=dapr)
    if dapr:
        return DaprConsumerRunner(consumer)
    return EmbeddedConsumerRunner(consumer)


class WorkerGroup:
    """The relay and consumers as threads of this process."""

    def __init__(
        self,
        *,
        broker: str | None = None,
        consumers: list[Consumer] | None = None,
        relay: bool = True,
    ):
        from events.brokers import get_broker
        from events.relay import Relay

        self.broker_name = broker or conf.get("EVENTS_BROKER")
        self.workers: list = []
        if relay:
            self.workers.append(Relay(get_broker(self.broker_name)))
        for consumer in consumers if consumers is not None else in_process_consumers():
            self.workers.append(runner_for(consumer, broker=self.broker_name))
        self._threads: list[threading.Thread] = []

    def start(self) -> WorkerGroup:
        wakeup.acquire_listener()
        for worker in self.workers:
            name = getattr(getattr(worker, "consumer", None), "name", "relay")
            thread = threading.Thread(target=worker.run, name=f"events-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        wakeup.release_listener()


def in_process_consumers() -> list[Consumer]:
    return [consumer for consumer in all_consumers() if consumer.in_process]


@asynccontextmanager
async def in_process_workers():
    """The lifespan hook of the embedded server: relay and consumers run beside the app."""
    import asyncio

    group = WorkerGroup()
    await asyncio.to_thread(group.start)
    try:
        yield group
    finally:
        await asyncio.to_thread(group.stop)
