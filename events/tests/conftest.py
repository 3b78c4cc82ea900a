from __future__ import annotations

import pytest

from bench.sidecar import InProcessDaprSidecar
from events.tests import support


@pytest.fixture
def fast_retries(settings):
    settings.EVENTS_RETRY_INITIAL_SECONDS = 0.005
    settings.EVENTS_RETRY_MAX_SECONDS = 0.02
    settings.EVENTS_RELAY_BACKOFF_INITIAL_SECONDS = 0.01
    settings.EVENTS_RELAY_BACKOFF_MAX_SECONDS = 0.04
    settings.EVENTS_POLL_INTERVAL_SECONDS = 0.05
    return settings


@pytest.fixture
def relay_publishes(settings):
    """Events recorded in the test are queued for a relay that publishes to a broker (the
    embedded mode queues nothing)."""
    settings.EVENTS_BROKER = "dapr"
    return settings


@pytest.fixture
def followups(fast_retries):
    support.attempts.clear()
    consumer = support.register_followups()
    yield consumer
    support.unregister(support.FOLLOWUPS)


@pytest.fixture
def sidecar(monkeypatch):
    with InProcessDaprSidecar() as running:
        for name, value in running.environ().items():
            monkeypatch.setenv(name, value)
        yield running
