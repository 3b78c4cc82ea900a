"""Prometheus metrics, defined in one place so every process exports the same names."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUEST_DURATION = Histogram(
    "todo_http_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
TASK_OPERATIONS = Counter("todo_task_operations_total", "Task changes by operation.", ["operation"])
TASK_QUERY_DURATION = Histogram(
    "todo_task_query_duration_seconds",
    "Task list query latency by kind.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
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
REMINDER_LATENESS = Histogram(
    "todo_reminder_lateness_seconds",
    "How late a reminder fired after its time.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
REMINDERS_FIRED = Counter("todo_reminders_fired_total", "Reminder triggers.", ["outcome"])
RECURRENCE_GENERATION = Histogram(
    "todo_recurrence_generation_seconds",
    "Completion of a recurring task to its next instance.",
    buckets=_LATENCY_BUCKETS,
)
WEBSOCKET_CONNECTIONS = Gauge("todo_websocket_connections", "Open WebSocket connections.")
WEBSOCKET_FANOUT = Histogram(
    "todo_websocket_fanout_seconds", "Commit to frame sent.", buckets=_LATENCY_BUCKETS
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
