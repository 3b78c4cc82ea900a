"""Running consumers and relays: one loop per consumer, on either transport.

- ``EmbeddedConsumerRunner`` reads the embedded log (published outbox rows, by position) with a
  cursor per consumer. A batch is applied in one transaction with its cursor move; if a handler
  fails, the batch is rolled back and replayed one event at a time, so the failing event retries
  and at worst becomes a dead letter while the events behind it go on.
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
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction

from events import conf, wakeup
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
from todo_project import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogRow:
    position: int
    envelope_json: str


class EmbeddedConsumerRunner:
    def __init__(self, consumer: Consumer, *, batch_size: int | None = None):
        self.consumer = consumer
        self.batch_size = batch_size or conf.get("EVENTS_CONSUMER_BATCH_SIZE")
        self.stop_event = threading.Event()
        self.healthy = threading.Event()
        self.handled = 0
        self._topic_predicate = f"topics @> ARRAY['{consumer.topic}']::varchar(64)[]"

    def stop(self) -> None:
        self.stop_event.set()
        # A loop waiting for work stops now, not after the poll interval (the others woken
        # with it look once more and wait again).
        wakeup.wake_local(wakeup.PUBLISHED)

    # -- the log -----------------------------------------------------------------------------

    def _lock_and_fetch(self, cursor, limit: int) -> tuple[int, list[LogRow]]:
        """The consumer's position, locked until the transaction ends, and up to ``limit`` log
        rows after it, in one round trip. One process at a time reads a consumer's log
        (others wait, then carry on from where it stopped). The rows are those the statement's
        snapshot sees after the position; positions become visible in order, so they are
        never a log with a hole, at worst a shorter one.

        The transaction waits for the disk like any other: its effects can be seen outside
        the database as soon as it commits (the frames the realtime consumer sends after
        commit, the events a consumer records, which sockets receive), so a crash must not
        lose it. A lost commit would be applied again with new events under the same
        sequence numbers, which clients that saw the first ones would never receive."""
        # The topic is a checked name (events.topics.VALID_NAME), written as a literal so the
        # planner can use the topic's partial index.
        select = f"""
            WITH reader AS (
                SELECT position FROM events_consumercursor WHERE consumer = %s FOR UPDATE
            )
            SELECT reader.position, log.position, log.envelope::text
            FROM reader LEFT JOIN LATERAL (
                SELECT position, envelope FROM events_outboxevent
                WHERE position > reader.position AND {self._topic_predicate}
                ORDER BY position LIMIT %s
            ) AS log ON true
            ORDER BY log.position
            """  # noqa: S608
        cursor.execute(select, [self.consumer.name, limit])
        found = cursor.fetchall()
        if not found:
            # A new consumer reads the log from its beginning (oldest retained event).
            cursor.execute(
                "INSERT INTO events_consumercursor (consumer, position, updated_at) "
                "VALUES (%s, 0, now()) ON CONFLICT (consumer) DO NOTHING",
                [self.consumer.name],
            )
            cursor.execute(select, [self.consumer.name, limit])
            found = cursor.fetchall()
        rows = [
            LogRow(position=row[1], envelope_json=row[2]) for row in found if row[1] is not None
        ]
        return found[0][0], rows

    def _move_cursor(self, cursor, position: int) -> None:
        cursor.execute(
            "UPDATE events_consumercursor SET position = %s, updated_at = now() WHERE consumer = %s",
            [position, self.consumer.name],
        )

    # -- one poll ------------------------------------------------------------------------------

    def poll(self) -> int:
        """Apply the next batch; returns how many log rows were consumed (0: nothing new)."""
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                _, rows = self._lock_and_fetch(cursor, self.batch_size)
                if not rows:
                    return 0
                try:
                    envelopes = [parse_envelope(row.envelope_json) for row in rows]
                    outcomes = apply_batch_in_transaction(self.consumer, envelopes)
                except EventFailed:
                    raise
                except Exception as exc:
                    # An invalid envelope, or a batch handler that failed: no one event to blame.
                    if database_down(exc):
                        raise
                    raise EventFailed(None) from exc
                self._move_cursor(cursor, rows[-1].position)
        except EventFailed as failed:
            return self._one_at_a_time(len(rows), failed_event_id=failed.event_id)
        except DatabaseError as exc:
            if database_down(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise
        count(self.consumer, outcomes)
        self.handled += len(rows)
        return len(rows)

    def _one_at_a_time(self, limit: int, *, failed_event_id=None) -> int:
        """After a failed batch: each event in its own transaction, with retries."""
        done = 0
        while done < limit and not self.stop_event.is_set():
            with transaction.atomic(), connection.cursor() as cursor:
                position, rows = self._lock_and_fetch(cursor, 1)
            if not rows:
                break
            row = rows[0]
            try:
                self._deliver_row(position, row, failed_event_id=failed_event_id)
            except Superseded:
                logger.info("%s: another process moved past %s", self.consumer.name, row.position)
            done += 1
        self.handled += done
        return done

    def _deliver_row(self, position: int, row: LogRow, *, failed_event_id=None) -> None:
        def advance():
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE events_consumercursor SET position = %s, updated_at = now() "
                    "WHERE consumer = %s AND position = %s",
                    [row.position, self.consumer.name, position],
                )
                if cursor.rowcount != 1:
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
            cursor.execute(
                "SELECT h.last_position - coalesce(c.position, 0) FROM events_eventloghead h "
                "LEFT JOIN events_consumercursor c ON c.consumer = %s WHERE h.id = 1",
                [self.consumer.name],
            )
            row = cursor.fetchone()
        metrics.CONSUMER_LAG.labels(consumer=self.consumer.name).set(row[0] if row else 0)

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
                if consumed >= self.batch_size:
                    continue  # a full batch: there may be more; otherwise wait for a wake
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
    """A Dapr streaming subscription for one consumer."""

    def __init__(self, consumer: Consumer, *, pubsub_name: str | None = None):
        self.consumer = consumer
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
                for index, _ in valid:
                    answers[index] = "success"
                self.handled += len(valid)
                self._db_delay = conf.get("EVENTS_RETRY_INITIAL_SECONDS")
                return answers
        for index, envelope in valid:
            attempts_made = 1 if envelope.event_id == failed_event_id else 0
            answers[index] = self._deliver(messages[index], envelope, attempts_made=attempts_made)
        return answers

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
        from dapr.clients import DaprClient
        from dapr.clients.grpc._response import TopicEventResponse

        own_client = client is None
        client = client or DaprClient()
        logger.info(
            "consumer %s subscribing to %s/%s (dead letters: %s)",
            self.consumer.name,
            self.pubsub_name,
            self.consumer.topic,
            self.consumer.dead_letters_topic,
        )
        try:
            while not self.stop_event.is_set():
                try:
                    subscription = client.subscribe(
                        pubsub_name=self.pubsub_name,
                        topic=self.consumer.topic,
                        metadata={"consumerID": self.consumer.name},
                        dead_letter_topic=self.consumer.dead_letters_topic,
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
                        # Give the last answers a moment to leave before the stream closes.
                        time.sleep(0.05)
                    subscription.close()
        finally:
            if own_client:
                client.close()
            connection.close()
            logger.info("consumer %s stopped after %d events", self.consumer.name, self.handled)


def runner_for(consumer: Consumer, *, broker: str | None = None):
    if (broker or conf.get("EVENTS_BROKER")) == "dapr":
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
