"""The pipeline's health read from the database, and the web process's gauges built on it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from events import health, metrics
from events.brokers.embedded import EmbeddedBroker
from events.dead_letters import CONSUMER_NAME
from events.models import DeadLetter, OutboxEvent, ProcessedEvent
from events.relay import relay_once
from events.services import dead_letter_record, processed_event_claim
from tasks import services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_reads():
    health.forget_positions()
    metrics.EVENT_HEALTH_COLLECTOR.forget()
    yield
    health.forget_positions()
    metrics.EVENT_HEALTH_COLLECTOR.forget()


def _samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_a_quiet_pipeline_has_no_backlog_and_no_positions(settings):
    settings.EVENTS_BROKER = "dapr"

    state = health.event_health()

    assert state.relay_backlog == 0
    assert state.relay_oldest_age_seconds is None
    assert state.dead_letters_24h == {}
    assert state.dead_letters_pending == 0
    by_name = {position.consumer: position for position in state.consumers}
    assert {"audit", "recurrence", "notifications", "realtime", CONSUMER_NAME} <= set(by_name)
    assert all(p.last_event_at is None and p.lag_events is None for p in state.consumers)


def test_the_relay_queue_counts_unsent_rows_and_ages_the_oldest(settings, user_id):
    # given two events queued for a relay that publishes to Dapr, recorded ten minutes ago
    settings.EVENTS_BROKER = "dapr"
    services.task_create(user_id=user_id, title="a")
    services.task_create(user_id=user_id, title="b")
    recorded = timezone.now() - timedelta(minutes=10)
    OutboxEvent.objects.update(created_at=recorded)

    state = health.event_health(now=recorded + timedelta(minutes=10))

    assert state.relay_backlog == 2
    assert state.relay_oldest_age_seconds == pytest.approx(600)


def test_the_embedded_mode_queues_nothing_and_counts_each_consumers_unread_events(
    settings, user_id
):
    settings.EVENTS_BROKER = "embedded"
    task = services.task_create(user_id=user_id, title="a")
    services.task_complete(user_id=user_id, task_id=task.pk)
    relay_once(EmbeddedBroker())

    state = health.event_health()

    lags = {position.consumer: position.lag_events for position in state.consumers}
    assert state.relay_backlog == 0
    # two task events; each task.* event is on task-updates too; no reminder was set
    assert (lags["audit"], lags["realtime"], lags["notifications"]) == (2, 2, 0)
    assert lags[CONSUMER_NAME] is None  # not run in the embedded mode


def test_a_consumers_last_event_is_its_newest_idempotency_key(settings, user_id):
    settings.EVENTS_BROKER = "dapr"
    older, newer = uuid.uuid4(), uuid.uuid4()
    processed_event_claim(consumer="audit", event_ids=[older, newer])
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ProcessedEvent.objects.filter(event_id=older).update(processed_at=an_hour_ago)
    ProcessedEvent.objects.filter(event_id=newer).update(
        processed_at=an_hour_ago + timedelta(minutes=1)
    )

    first = {p.consumer: p.last_event_at for p in health.event_health().consumers}
    # a later read that finds nothing newer keeps what it knew
    again = {p.consumer: p.last_event_at for p in health.event_health().consumers}
    # and a key written since is found by the next read
    ProcessedEvent.objects.create(consumer="audit", event_id=uuid.uuid4())
    latest = {p.consumer: p.last_event_at for p in health.event_health().consumers}

    assert first["audit"] == an_hour_ago + timedelta(minutes=1)
    assert first["recurrence"] is None
    assert again["audit"] == first["audit"]
    assert latest["audit"] > first["audit"]
    assert latest["audit"] >= timezone.now() - timedelta(minutes=1)


def test_a_known_key_that_is_gone_is_looked_up_again(settings, user_id):
    settings.EVENTS_BROKER = "dapr"
    services.task_create(user_id=user_id, title="a")
    (event_id,) = OutboxEvent.objects.values_list("event_id", flat=True)[:1]
    processed_event_claim(consumer="audit", event_ids=[event_id])
    assert {p.consumer: p.last_event_at for p in health.event_health().consumers}["audit"]

    ProcessedEvent.objects.filter(consumer="audit").delete()  # the sweep took it

    assert {p.consumer: p.last_event_at for p in health.event_health().consumers}["audit"] is None


def test_dead_letters_of_the_last_day_by_consumer_and_those_pending(user_id):
    dead_letter_record(consumer="recurrence", topic="task-events", error="boom", attempts=5)
    dead_letter_record(consumer="recurrence", topic="task-events", error="boom", attempts=5)
    replayed = dead_letter_record(consumer="audit", topic="task-events", error="x", attempts=1)
    DeadLetter.objects.filter(pk=replayed.pk).update(replayed_at=timezone.now())

    today = health.event_health()
    tomorrow = health.event_health(now=timezone.now() + timedelta(hours=25))

    assert today.dead_letters_24h == {"audit": 1, "recurrence": 2}
    assert today.dead_letters_pending == 2
    assert tomorrow.dead_letters_24h == {}


def test_the_web_metrics_export_the_pipeline_from_the_database(client, settings, user_id):
    # given one queued event recorded two minutes ago, a consumer that processed an event five
    # minutes ago and a dead letter
    settings.EVENTS_BROKER = "dapr"
    services.task_create(user_id=user_id, title="a")
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    (event_id,) = OutboxEvent.objects.values_list("event_id", flat=True)[:1]
    processed_event_claim(consumer="audit", event_ids=[event_id])
    ProcessedEvent.objects.update(processed_at=timezone.now() - timedelta(minutes=5))
    dead_letter_record(consumer="recurrence", topic="task-events", error="boom", attempts=5)

    samples = _samples(client.get("/metrics").content)

    assert samples[("todo_outbox_backlog_events", ())] == 1
    assert 120 <= samples[("todo_outbox_oldest_unpublished_age_seconds", ())] < 180
    age = samples[("todo_consumer_last_event_age_seconds", (("consumer", "audit"),))]
    assert 300 <= age < 360
    assert ("todo_consumer_last_event_age_seconds", (("consumer", "recurrence"),)) not in samples
    assert samples[("todo_dead_letters_recent", (("consumer", "recurrence"),))] == 1
    assert samples[("todo_dead_letters_recent", (("consumer", "audit"),))] == 0


def test_the_gauges_are_read_once_for_many_scrapes(client, settings, user_id, monkeypatch):
    settings.EVENTS_BROKER = "dapr"
    reads = []
    real = health.event_health
    monkeypatch.setattr(health, "event_health", lambda **kw: reads.append(1) or real(**kw))

    for _ in range(3):
        assert b"todo_outbox_backlog_events 0.0" in client.get("/metrics").content

    assert len(reads) == 1


def test_a_database_outage_leaves_the_gauges_out_and_the_scrape_up(client, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "event_health", database_down)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"todo_outbox_backlog_events" not in response.content
    assert b"todo_http_request_duration_seconds" in response.content
