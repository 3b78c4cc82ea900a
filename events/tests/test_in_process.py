"""The embedded server runs the relay and the consumers in its own process."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.db import transaction

from events.consumers import get_consumer
from events.runners import WorkerGroup, in_process_workers
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import TaskHistory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_embedded_server_registers_the_workers_with_its_lifespan(settings):
    from todo_project.asgi import lifespan_parts

    assert settings.RUN_WORKERS_IN_PROCESS
    assert ("events", in_process_workers) in lifespan_parts()


def test_a_change_goes_through_relay_and_audit_inside_the_server_process(user_id, fast_retries):
    # given the workers the server's lifespan starts
    loop = asyncio.new_event_loop()
    workers = in_process_workers()
    group = loop.run_until_complete(workers.__aenter__())
    try:
        assert "audit" in {getattr(w, "consumer", None) and w.consumer.name for w in group.workers}
        # when a change commits
        task = services.task_create(user_id=user_id, title="live")
        # then the relay publishes it and the audit consumer records it, woken at once
        started = time.monotonic()
        recorded = TaskHistory.objects.filter(task_id=task.pk, event_type="task.created")
        while not recorded.exists() and time.monotonic() - started < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        loop.run_until_complete(workers.__aexit__(None, None, None))
        loop.close()
    assert recorded.exists()
    assert elapsed < 5
    # and shutting down stopped every worker thread
    assert all(not thread.is_alive() for thread in group._threads)


def test_a_burst_of_several_batches_goes_through_on_one_wake(user_id, settings):
    # given batches smaller than the burst, and polling too slow to help
    settings.EVENTS_RELAY_BATCH_SIZE = 3
    settings.EVENTS_CONSUMER_BATCH_SIZE = 2
    settings.EVENTS_POLL_INTERVAL_SECONDS = 60
    group = WorkerGroup(consumers=[get_consumer(AUDIT)]).start()
    try:
        assert all(worker.healthy.wait(10) for worker in group.workers)
        # when one transaction records seven events (one wake)
        with transaction.atomic():
            for index in range(7):
                services.task_create(user_id=user_id, title=f"burst {index}")
        # then the relay and the consumer go on after each full batch until the log is drained
        recorded = TaskHistory.objects.filter(user_id=user_id)
        started = time.monotonic()
        while recorded.count() < 7 and time.monotonic() - started < 10:
            time.sleep(0.01)
    finally:
        group.stop()
    assert recorded.count() == 7
    # and stopping did not wait for the next poll
    assert all(not thread.is_alive() for thread in group._threads)
