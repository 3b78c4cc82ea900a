"""Metrics of the event machinery: the relay, consumers and dead letters.

Each process exports what it does itself (the counters and the consumers' delay). A process that
is dead exports nothing, so the web process also exports the database's view of the pipeline
(``EventHealthCollector``, on its own ``EVENT_HEALTH_REGISTRY``): the relay's queue, when each
consumer last processed an event, and recent dead letters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter(
    "todo_events_published_total", "Events handed to the broker.", ["topic", "event_type"]
)
RELAY_PUBLISH_ERRORS = Counter("todo_relay_publish_errors_total", "Failed publish attempts.")
RELAY_LAG = Gauge("todo_relay_lag_seconds", "Age of the oldest unpublished outbox row.")
CONSUMER_LAG = Gauge("todo_consumer_lag_events", "Events waiting for a consumer.", ["consumer"])
CONSUMER_EVENTS = Counter(
    "todo_consumer_events_total", "Events handled by consumers.", ["consumer", "outcome"]
)
# From a second to an hour: a healthy consumer sits in the first buckets, a stalled one walks up.
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CONSUMER_EVENT_DELAY = Histogram(
    "todo_consumer_event_delay_seconds",
    "Time from an event's timestamp to its handling by a consumer.",
    ["consumer"],
    buckets=DELAY_BUCKETS,
)
DEAD_LETTERS = Counter("todo_dead_letters_total", "Events dead-lettered.", ["consumer"])
DEAD_LETTERS_PENDING = Gauge("todo_dead_letters_pending", "Dead letters not yet replayed.")
DEAD_LETTER_TOPIC_EVENTS = Counter(
    "todo_dead_letter_topic_events_total",
    "Messages read from a dead-letter topic (what the broker gave up on).",
    ["topic"],
)


def observe_delay(consumer: str, timestamps: Iterable[datetime]) -> None:
    """Record how long after their timestamp a consumer handled events."""
    now = timezone.now()
    histogram = CONSUMER_EVENT_DELAY.labels(consumer=consumer)
    for timestamp in timestamps:
        histogram.observe(max(0.0, (now - timestamp).total_seconds()))


class EventHealthCollector(Collector):
    """The database's view of the pipeline (``events.health``), read at most every
    ``cache_seconds`` whatever the number of scrapers. When the database cannot answer, the
    samples are left out: the scrape itself never fails."""

    def __init__(self, *, cache_seconds: float = 10.0):
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._families: list[GaugeMetricFamily] = []
        self._read_at = float("-inf")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                self._families = self._read()
                self._read_at = time.monotonic()
            families = list(self._families)
        yield from families

    def forget(self) -> None:
        with self._lock:
            self._read_at = float("-inf")

    def _read(self) -> list[GaugeMetricFamily]:
        from events.health import event_health

        try:
            health = event_health()
        except Exception as exc:  # the database is down: say nothing rather than fail
            logger.warning("event health unavailable for /metrics: %s", exc)
            return []
        return health_families(health)


def health_families(health) -> list[GaugeMetricFamily]:
    """The gauges of one ``events.health.EventHealth``."""
    backlog = GaugeMetricFamily(
        "todo_outbox_backlog_events", "Outbox rows waiting for the relay (from the database)."
    )
    backlog.add_metric([], health.relay_backlog)
    oldest = GaugeMetricFamily(
        "todo_outbox_oldest_unpublished_age_seconds",
        "Age of the oldest outbox row waiting for the relay; 0 when none waits.",
    )
    oldest.add_metric([], health.relay_oldest_age_seconds or 0.0)
    last_event = GaugeMetricFamily(
        "todo_consumer_last_event_age_seconds",
        "Time since a consumer last processed an event (from its idempotency keys).",
        labels=["consumer"],
    )
    now = timezone.now()
    for position in health.consumers:
        if position.last_event_at is not None:
            age = max(0.0, (now - position.last_event_at).total_seconds())
            last_event.add_metric([position.consumer], age)
    recent = GaugeMetricFamily(
        "todo_dead_letters_recent",
        "Dead letters recorded in the last 24 hours, by the consumer they failed in.",
        labels=["consumer"],
    )
    names = {position.consumer for position in health.consumers} | set(health.dead_letters_24h)
    for name in sorted(names):
        recent.add_metric([name], health.dead_letters_24h.get(name, 0))
    return [backlog, oldest, last_event, recent]


# Registered with the web process's /metrics only (``todo_project.views``): one set of database
# reads per web process, not one per worker.
EVENT_HEALTH_COLLECTOR = EventHealthCollector()
EVENT_HEALTH_REGISTRY = CollectorRegistry(auto_describe=False)
EVENT_HEALTH_REGISTRY.register(EVENT_HEALTH_COLLECTOR)
