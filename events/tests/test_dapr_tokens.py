"""Dapr's two tokens, as daprd enforces them: the app sends ``DAPR_API_TOKEN`` on every call to
its sidecar (publish, subscriptions, jobs), and the sidecar calls the app back with
``APP_API_TOKEN``. The stand-in refuses calls without the API token, as daprd does."""

from __future__ import annotations

import json
import threading

import grpc
import pytest
from dapr.clients import DaprClient

from bench.sidecar import InProcessDaprSidecar
from events.brokers import BrokerUnavailable
from events.brokers.dapr import DaprBroker, dapr_client, use_api_token
from events.models import OutboxEvent
from events.relay import relay_once
from events.runners import DaprConsumerRunner
from events.tests import support
from events.tests.support import followups_of, updates_of
from reminders import jobs
from reminders.models import Reminder, ReminderState
from tasks import services

API_TOKEN = "api-token-0123456789abcdef0123456789"
APP_TOKEN = "app-token-0123456789abcdef0123456789"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_publishes")]


@pytest.fixture
def sidecar(monkeypatch, settings):
    """A sidecar that wants the API token, and an app that has it only as a setting (as from
    ``DAPR_API_TOKEN_FILE``): nothing in the SDK's own environment."""
    monkeypatch.delenv("DAPR_API_TOKEN", raising=False)
    with InProcessDaprSidecar(api_token=API_TOKEN, app_token=APP_TOKEN) as running:
        for name, value in running.environ().items():
            monkeypatch.setenv(name, value)
        settings.DAPR_API_TOKEN = API_TOKEN
        settings.APP_API_TOKEN = APP_TOKEN
        jobs.close_client()
        yield running
        jobs.close_client()
    settings.DAPR_API_TOKEN = ""
    use_api_token()  # the SDK no longer holds the test's token


def test_a_call_without_the_api_token_is_refused(sidecar, settings, user_id):
    services.task_create(user_id=user_id, title="a")
    settings.DAPR_API_TOKEN = ""

    with pytest.raises(BrokerUnavailable, match="UNAUTHENTICATED"):
        relay_once(DaprBroker(pubsub_name="pubsub"))

    assert sidecar.messages("task-events") == []
    assert sidecar.refused_calls
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 1


def test_a_wrong_api_token_is_refused_too(sidecar, settings):
    settings.DAPR_API_TOKEN = "not-" + API_TOKEN

    with dapr_client() as client, pytest.raises(grpc.RpcError) as refused:
        client.publish_event(pubsub_name="pubsub", topic_name="task-events", data="{}")

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_relay_and_a_consumer_work_with_the_token(sidecar, user_id, fast_retries):
    consumer = support.register_followups()
    try:
        updates = updates_of(user_id, ["b"])

        published = relay_once(DaprBroker(pubsub_name="pubsub"))

        runner = DaprConsumerRunner(consumer)
        thread = threading.Thread(target=runner.run)
        thread.start()
        try:
            assert sidecar.wait_for(lambda: len(sidecar.answered(consumer.name)) >= 2)
        finally:
            runner.stop()
            thread.join(15)
    finally:
        support.unregister(support.FOLLOWUPS)

    assert published.published == 2
    assert not sidecar.refused_calls
    assert [answer.status for answer in sidecar.answered(consumer.name)] == ["success"] * 2
    assert followups_of(updates) == [1]


def test_jobs_are_scheduled_with_the_token_and_call_the_app_back_with_the_app_token(
    sidecar, user_id, server, settings
):
    from datetime import timedelta

    from django.utils import timezone

    # given a reminder due now, scheduled through the sidecar with the API token
    sidecar.app_url = server.url
    task = services.task_create(
        user_id=user_id,
        title="Call Bob",
        due_date=timezone.now() + timedelta(hours=1),
        reminder_time="1h",
        check_reminder_in_past=False,
    )
    reminder = Reminder.objects.get(task_id=task.pk)
    assert jobs.sync_reminder_job(reminder.pk)
    name = jobs.job_name(task.pk)

    # when the sidecar calls the job back, first without the app token, then as daprd does
    sidecar.app_token = ""
    refused = sidecar.trigger_job(name)
    sidecar.app_token = APP_TOKEN
    fired = sidecar.trigger_job(name)

    assert not sidecar.refused_calls
    assert refused[0] == 401
    assert json.loads(refused[1])["error"]["code"] == "invalid_token"
    assert (fired[0], json.loads(fired[1])) == (200, {"status": "fired"})
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.FIRED


def test_the_sdk_reads_its_own_variable_when_no_setting_is_given(sidecar, settings, monkeypatch):
    settings.DAPR_API_TOKEN = ""
    monkeypatch.setenv("DAPR_API_TOKEN", API_TOKEN)

    with dapr_client() as client:
        client.publish_event(pubsub_name="pubsub", topic_name="task-events", data="{}")

    assert len(sidecar.messages("task-events")) == 1
    assert isinstance(client, DaprClient)
