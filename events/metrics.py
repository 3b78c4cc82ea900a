"""Metrics of the event machinery: the relay, consumers and dead letters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "todo_events_published_total", "Events handed to the broker.", ["topic", "event_type"]
)
RELAY_PUBLISH_ERRORS = Counter("todo_relay_publish_errors_total", "Failed publish attempts.")
RELAY_LAG = Gauge("todo_relay_lag_seconds", "Age of the oldest unpublished outbox row.")
CONSUMER_LAG = Gauge("todo_consumer_lag_events", "Events waiting for a consumer.", ["consumer"])
CONSUMER_EVENTS = Counter(
    "todo_consumer_events_total", "Events handled by consumers.", ["consumer", "outcome"]
)
DEAD_LETTERS = Counter("todo_dead_letters_total", "Events dead-lettered.", ["consumer"])
DEAD_LETTERS_PENDING = Gauge("todo_dead_letters_pending", "Dead letters not yet replayed.")
