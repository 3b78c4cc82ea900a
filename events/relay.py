"""The relay: publishes committed outbox rows and marks them sent.

One pass is one transaction: claim unsent rows in id order (``FOR UPDATE NOWAIT``, and when
another relay holds some, ``SKIP LOCKED`` so relays running side by side take different rows),
hold back any row whose user has an earlier unsent row claimed by another relay (so each user's
events go out in sequence order), publish, mark what was accepted, commit. Nothing is marked
before the broker accepted it; if the relay dies after publishing and before the commit, the rows
stay unsent and are published again (consumers drop the duplicate by ``event_id``). A failed
publish rolls the pass back and the relay backs off, doubling the pause up to a cap.

With the embedded broker nothing is queued (consumers read the outbox itself); rows queued
while a broker was configured are only taken off the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.utils import DatabaseError, OperationalError
from django.utils import timezone

from events import conf, metrics, wakeup
from events.brokers import Broker, BrokerUnavailable, OutboxRow
from events.services import events_expire

logger = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"


# Lock the first ids of the queue and read those rows, by an array of the ids: a join's plan
# probes the queue index's ends, where the dead entries lie (docs/decisions/relay-queue-table.md).
_CLAIM = """
WITH claimed AS (
    SELECT id FROM events_outboxpending ORDER BY id LIMIT %s FOR UPDATE {wait}
)
SELECT id, event_id, event_type, user_id, sequence, topics, {envelope}
FROM events_outboxevent WHERE id = ANY(ARRAY(SELECT id FROM claimed))
ORDER BY id
"""


def _claim(cursor, batch_size: int, *, envelopes: bool, skip_locked: bool) -> list[OutboxRow]:
    wait = "SKIP LOCKED" if skip_locked else "NOWAIT"
    envelope = "envelope::text" if envelopes else "''"
    cursor.execute(_CLAIM.format(wait=wait, envelope=envelope), [batch_size])
    return _outbox_rows(cursor.fetchall())


def _outbox_rows(rows) -> list[OutboxRow]:
    """``_CLAIM``'s rows, whose columns are ``OutboxRow``'s fields in order."""
    return [
        OutboxRow(
            id=id_,
            event_id=event_id,
            event_type=event_type,
            user_id=user_id,
            sequence=sequence,
            topics=tuple(topics),
            envelope_json=envelope_json,
        )
        for id_, event_id, event_type, user_id, sequence, topics, envelope_json in rows
    ]


def _hold_back_users_behind_others(cursor, rows: list[OutboxRow]) -> list[OutboxRow]:
    """Drop rows that have an earlier unsent row of the same user outside this claim."""
    cursor.execute(
        """
        SELECT o.user_id, min(o.id)
        FROM events_outboxpending AS p JOIN events_outboxevent AS o ON o.id = p.id
        WHERE p.id < %s AND o.user_id = ANY(%s) AND NOT (p.id = ANY(%s))
        GROUP BY o.user_id
        """,
        [rows[-1].id, sorted({row.user_id for row in rows}), [row.id for row in rows]],
    )
    first_foreign = dict(cursor.fetchall())
    if not first_foreign:
        return rows
    return [
        row
        for row in rows
        if row.user_id not in first_foreign or row.id < first_foreign[row.user_id]
    ]


@dataclass(frozen=True)
class RelayPass:
    published: int = 0
    refused: int = 0
    held_back: int = 0


def relay_once(broker: Broker, *, batch_size: int | None = None) -> RelayPass:
    """One pass: how many rows were published and marked sent, refused by the broker, or held
    back behind another relay's claim.

    The claim first takes the oldest unsent rows without skipping any: if none of them is
    locked, no other relay holds an earlier row of these users and nothing needs holding back
    (the usual case, one relay at a time). If one is locked, other relays are at work: the pass
    starts again and takes the rows they have not locked. (Trying inside a savepoint instead
    would make every row lock a subtransaction's, and the update of each row after it would
    create a multixact.)"""
    batch_size = batch_size or conf.get("EVENTS_RELAY_BATCH_SIZE")
    try:
        return _relay_pass(broker, batch_size, skip_locked=False)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
    return _relay_pass(broker, batch_size, skip_locked=True)


def _relay_pass(broker: Broker, batch_size: int, *, skip_locked: bool) -> RelayPass:
    with transaction.atomic():
        with connection.cursor() as cursor:
            # A pass only ever needs redoing, never undoing: if a crash loses this commit, the
            # rows are unsent again and go out again. So it need not wait for the disk.
            cursor.execute("SET LOCAL synchronous_commit TO off")
            claimed = _claim(
                cursor,
                batch_size,
                envelopes=getattr(broker, "publishes_envelopes", True),
                skip_locked=skip_locked,
            )
            if not claimed:
                return RelayPass()
            rows = _hold_back_users_behind_others(cursor, claimed) if skip_locked else claimed
            if not rows:
                return RelayPass(held_back=len(claimed))
            started = time.monotonic()
            failed = broker.publish(rows)
            sent = _accepted(rows, failed)
            if failed:
                cursor.execute(
                    """
                    UPDATE events_outboxevent
                    SET publish_attempts = publish_attempts + 1, last_error = %s
                    WHERE event_id = ANY(%s)
                    """,
                    ["the broker refused the entry", list(failed)],
                )
                metrics.RELAY_PUBLISH_ERRORS.inc(len(failed))
                logger.warning("broker refused %d of %d events", len(failed), len(rows))
            if sent:
                sent_ids = [row.id for row in sent]
                cursor.execute("DELETE FROM events_outboxpending WHERE id = ANY(%s)", [sent_ids])
                if getattr(broker, "stamps_sent_at", True):
                    cursor.execute(
                        "UPDATE events_outboxevent SET sent_at = now() WHERE id = ANY(%s)",
                        [sent_ids],
                    )
        if sent:
            transaction.on_commit(lambda: broker.after_commit(sent))
    published = Counter((topic, row.event_type) for row in sent for topic in row.topics)
    for (topic, event_type), number in published.items():
        metrics.EVENTS_PUBLISHED.labels(topic=topic, event_type=event_type).inc(number)
    logger.debug("published %d events in %.1f ms", len(sent), (time.monotonic() - started) * 1000)
    return RelayPass(
        published=len(sent), refused=len(rows) - len(sent), held_back=len(claimed) - len(rows)
    )


def _accepted(rows: list[OutboxRow], failed: set) -> list[OutboxRow]:
    """Rows to mark sent: accepted, and not after a refused row of the same user (which will be
    published again first, keeping the user's order)."""
    if not failed:
        return rows
    blocked: set[str] = set()
    accepted = []
    for row in rows:
        if row.event_id in failed:
            blocked.add(row.user_id)
        elif row.user_id not in blocked:
            accepted.append(row)
    return accepted


def update_lag_metrics() -> None:
    """Age of the oldest unsent row, and dead letters waiting for an operator."""
    with connection.cursor() as cursor:
        # The oldest unsent row is the first in the queue's id order.
        cursor.execute(
            "SELECT created_at FROM events_outboxevent "
            "WHERE id = (SELECT min(id) FROM events_outboxpending)"
        )
        row = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM events_deadletter WHERE replayed_at IS NULL")
        (dead_letters,) = cursor.fetchone()
    oldest = row[0] if row else None
    metrics.RELAY_LAG.set((timezone.now() - oldest).total_seconds() if oldest else 0)
    metrics.DEAD_LETTERS_PENDING.set(dead_letters)


class Relay:
    """Runs ``relay_once`` until stopped: at once after a full batch, otherwise on a wake (a
    commit that recorded events, here or in another process; one that came during the pass is
    kept) or after the poll interval."""

    def __init__(self, broker: Broker, *, batch_size: int | None = None, sweep: bool = True):
        self.broker = broker
        self.batch_size = batch_size
        self.sweep = sweep
        self.stop_event = threading.Event()
        self.healthy = threading.Event()
        self.published = 0

    def stop(self) -> None:
        self.stop_event.set()
        # A loop waiting for work stops now, not after the poll interval (the others woken
        # with it look once more and wait again).
        wakeup.wake_local(wakeup.OUTBOX)

    def run(self) -> None:
        wake = wakeup.waiter(wakeup.OUTBOX)
        initial = conf.get("EVENTS_RELAY_BACKOFF_INITIAL_SECONDS")
        delay = initial
        last_sweep = float("-inf")  # sweep once at start, then every interval
        last_lag = 0.0
        logger.info("relay started (broker: %s)", self.broker.name)
        try:
            while not self.stop_event.is_set():
                wake.clear()
                refused = 0
                try:
                    result = relay_once(self.broker, batch_size=self.batch_size)
                    # What a pass published counts even when it also had rows refused.
                    self.published += result.published
                    refused = result.refused
                    if refused:
                        raise BrokerUnavailable(f"{refused} events refused")
                    now = time.monotonic()
                    if now - last_lag > 1.0:
                        update_lag_metrics()
                        last_lag = now
                    if self.sweep and now - last_sweep > conf.get("EVENTS_SWEEP_INTERVAL_SECONDS"):
                        events_expire()
                        last_sweep = now
                except (BrokerUnavailable, DatabaseError) as exc:
                    self.healthy.clear()
                    if not refused:  # refused rows were counted one by one by relay_once
                        metrics.RELAY_PUBLISH_ERRORS.inc()
                    logger.warning("relay: publish failed (%s); retrying in %.2fs", exc, delay)
                    if isinstance(exc, DatabaseError):
                        connection.close()
                    if self.stop_event.wait(delay):
                        break
                    delay = min(delay * 2, conf.get("EVENTS_RELAY_BACKOFF_MAX_SECONDS"))
                    continue
                delay = initial
                self.healthy.set()
                if result.published >= (self.batch_size or conf.get("EVENTS_RELAY_BATCH_SIZE")):
                    continue  # a full batch: there may be more
                if result.held_back:
                    # Another relay holds earlier rows of these users; it commits soon.
                    wake.wait(0.01)
                    continue
                if not self.stop_event.is_set():  # stop() sets it before it wakes us
                    wake.wait(conf.get("EVENTS_POLL_INTERVAL_SECONDS"))
        finally:
            wakeup.forget(wakeup.OUTBOX, wake)
            self.broker.close()
            connection.close()
            logger.info("relay stopped after publishing %d events", self.published)
