"""How the event pipeline is doing, read from the database.

The relay and the consumers export their own metrics, but a dead process exports nothing: these
reads let the web process (``events.metrics.EventHealthCollector``) and the operators' pages say
how far behind the relay and each consumer are whatever runs or not. Every read is cheap: counts
are capped, and "when did a consumer last process an event" follows the idempotency keys written
since the previous read (``_LastProcessed``) instead of scanning a consumer's whole history.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from events import conf, log
from events.consumers import Consumer, all_consumers
from events.models import DeadLetter

# Counts stop here: past it, "a lot" is all an alert or a page needs to know.
COUNT_CAP = 1_000_000
DEAD_LETTER_WINDOW = timedelta(hours=24)
# A key is written with its transaction's start time, so it can commit up to a transaction's
# length after that time: a read looks this far behind the previous one.
KEY_COMMIT_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class ConsumerPosition:
    consumer: str
    lag_events: int | None  # events recorded but not yet processed by it, if knowable
    last_event_at: datetime | None  # timestamp of the last event it processed


@dataclass(frozen=True)
class EventHealth:
    relay_backlog: int
    relay_oldest_age_seconds: float | None
    consumers: list[ConsumerPosition]
    dead_letters_24h: dict[str, int]  # consumer -> count
    dead_letters_pending: int


def event_health(*, now: datetime | None = None) -> EventHealth:
    """The relay's queue, each registered consumer's position and the dead letters, as of
    ``now`` (the current time by default). Raises ``DatabaseError`` when the database is down."""
    now = now or timezone.now()
    backlog, oldest = _relay_queue(now)
    consumers = all_consumers()
    last_processed = _last_processed.read([consumer.name for consumer in consumers])
    return EventHealth(
        relay_backlog=backlog,
        relay_oldest_age_seconds=oldest,
        consumers=[
            ConsumerPosition(
                consumer=consumer.name,
                lag_events=_lag(consumer),
                last_event_at=last_processed.get(consumer.name),
            )
            for consumer in consumers
        ],
        dead_letters_24h=_recent_dead_letters(now),
        dead_letters_pending=DeadLetter.objects.filter(replayed_at__isnull=True).count(),
    )


def _relay_queue(now: datetime) -> tuple[int, float | None]:
    """How many outbox rows wait for the relay, and how old the oldest is (None: none wait).
    The embedded mode queues nothing (``events.conf.relay_publishes``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events_outboxpending LIMIT %s) AS queued",
            [COUNT_CAP],
        )
        (backlog,) = cursor.fetchone()
        if not backlog:
            return 0, None
        cursor.execute(
            """
            SELECT o.created_at FROM events_outboxpending AS p
            JOIN events_outboxevent AS o ON o.id = p.id
            ORDER BY p.id LIMIT 1
            """
        )
        row = cursor.fetchone()
    if row is None:  # published between the two reads
        return 0, None
    return backlog, max(0.0, (now - row[0]).total_seconds())


def _lag(consumer: Consumer) -> int | None:
    """Unread events of an embedded consumer (its cursor in the log). With a broker, the
    position is the broker's (Kafka consumer-group offsets): not knowable here."""
    if conf.relay_publishes() or not consumer.in_process:
        return None
    with connection.cursor() as cursor:
        return log.unread_count(cursor, consumer=consumer.name, topic=consumer.topic)


def _recent_dead_letters(now: datetime) -> dict[str, int]:
    rows = (
        DeadLetter.objects.filter(last_failed_at__gte=now - DEAD_LETTER_WINDOW)
        .values("consumer")
        .annotate(letters=Count("id"))
        .order_by("consumer")
    )
    return {row["consumer"]: row["letters"] for row in rows}


@dataclass(frozen=True)
class _Key:
    processed_at: datetime
    event_id: uuid.UUID


class _LastProcessed:
    """The newest idempotency key of each consumer, kept between reads.

    A read looks at the keys written since the previous read (less ``KEY_COMMIT_MARGIN``)
    through their ``processed_at`` index, so its cost follows the event rate, not the time a
    consumer has been stopped. A consumer with nothing new keeps its known key if that key still
    exists (the sweep, or a rolled-back test, may have removed it: then, and the first time, its
    newest key is looked up once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Key] = {}
        self._since: datetime | None = None

    def read(self, consumers: list[str]) -> dict[str, datetime]:
        with self._lock, connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            (started,) = cursor.fetchone()
            fresh = self._written_since(cursor, consumers) if self._since else {}
            for name in consumers:
                key = fresh.get(name)
                if key is None:
                    key = self._known.get(name)
                    if key is None or not _key_exists(cursor, name, key):
                        key = _newest_key(cursor, name)
                if key is None:
                    self._known.pop(name, None)
                else:
                    self._known[name] = key
            self._since = started - KEY_COMMIT_MARGIN
            return {
                name: self._known[name].processed_at for name in consumers if name in self._known
            }

    def _written_since(self, cursor, consumers: list[str]) -> dict[str, _Key]:
        cursor.execute(
            """
            SELECT DISTINCT ON (consumer) consumer, processed_at, event_id
            FROM events_processedevent
            WHERE processed_at >= %s AND consumer = ANY(%s)
            ORDER BY consumer, processed_at DESC
            """,
            [self._since, consumers],
        )
        return {name: _Key(at, event_id) for name, at, event_id in cursor.fetchall()}

    def forget(self) -> None:
        with self._lock:
            self._known.clear()
            self._since = None


def _key_exists(cursor, consumer: str, key: _Key) -> bool:
    cursor.execute(
        "SELECT 1 FROM events_processedevent WHERE consumer = %s AND event_id = %s",
        [consumer, key.event_id],
    )
    return cursor.fetchone() is not None


def _newest_key(cursor, consumer: str) -> _Key | None:
    cursor.execute(
        """
        SELECT processed_at, event_id FROM events_processedevent
        WHERE consumer = %s ORDER BY processed_at DESC LIMIT 1
        """,
        [consumer],
    )
    row = cursor.fetchone()
    return _Key(*row) if row else None


_last_processed = _LastProcessed()


def forget_positions() -> None:
    """Drop what the reads remember (tests that rewrite the keys' history call it)."""
    _last_processed.forget()
