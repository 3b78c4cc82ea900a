"""The events settings, each with the default the embedded mode uses.

``todo_project/settings.py`` reads them from the environment; these accessors are read at call
time, so a test's ``settings`` fixture changes them for the code under test.
"""

from __future__ import annotations

from django.conf import settings

_DEFAULTS = {
    # "embedded" (consumers read the outbox) or "dapr" (the relay publishes to a Dapr sidecar).
    "EVENTS_BROKER": "embedded",
    "DAPR_PUBSUB_NAME": "pubsub",
    # Relay: rows claimed per transaction, and the back-off after a failed publish.
    "EVENTS_RELAY_BATCH_SIZE": 500,
    "EVENTS_RELAY_BACKOFF_INITIAL_SECONDS": 0.1,
    "EVENTS_RELAY_BACKOFF_MAX_SECONDS": 30.0,
    # Consumers: log rows read per transaction, attempts before a dead letter, and the
    # back-off between attempts.
    "EVENTS_CONSUMER_BATCH_SIZE": 200,
    "EVENTS_CONSUMER_MAX_ATTEMPTS": 5,
    "EVENTS_RETRY_INITIAL_SECONDS": 0.1,
    "EVENTS_RETRY_MAX_SECONDS": 5.0,
    # Sleep between polls when no notification arrives (notifications normally wake sooner).
    "EVENTS_POLL_INTERVAL_SECONDS": 1.0,
    # Idempotency keys and sent outbox rows older than this are deleted by the sweep.
    "EVENTS_RETENTION_DAYS": 7,
    "EVENTS_SWEEP_INTERVAL_SECONDS": 3600,
    # Send a NOTIFY after each commit that recorded events, so other processes wake at once.
    "EVENTS_NOTIFY": True,
}


def get(name: str):
    return getattr(settings, name, _DEFAULTS[name])


def relay_publishes() -> bool:
    """Whether the relay publishes the outbox to a broker, so that recording also queues each
    row for it; embedded consumers read the outbox itself, and nothing is queued."""
    return get("EVENTS_BROKER") != "embedded"
