"""Crash safety with real processes: ``kill -9`` a relay between publish and mark, a consumer in
the middle of a batch or of a message; two consumer processes receiving the same message; SIGTERM.
Each check ends the same way: every event arrived, and every consumer applied each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from bench.sidecar import InProcessDaprSidecar
from events import log
from events.brokers.dapr import DaprBroker
from events.models import ConsumerCursor, OutboxEvent
from events.relay import relay_once
from events.tests import support
from events.tests.support import FOLLOWUPS, followups_of, relay_all, updates_of

pytestmark = pytest.mark.django_db(transaction=True)

# Runs a management command in a fresh interpreter with the test consumer registered.
_BOOT = (
    "import sys, django; django.setup();"
    "from events.tests.support import register_followups; register_followups();"
    "from django.core.management import call_command; call_command(*sys.argv[1:])"
)


class Process:
    def __init__(self, tmp_path: Path, name: str, *args: str, env: dict[str, str]):
        self.log = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        self.handle = self.log.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, "-c", _BOOT, *args, "--metrics-port", "0"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        assert self.popen.wait(10) == -signal.SIGKILL

    def terminate(self) -> int:
        os.kill(self.popen.pid, signal.SIGTERM)
        return self.popen.wait(20)

    def output(self) -> str:
        self.handle.flush()
        return self.log.read_text()

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self.handle.close()


@pytest.fixture
def spawn(tmp_path, fast_retries):
    started: list[Process] = []
    base = {
        **os.environ,
        "DATABASE_URL": support.database_url(),
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
        "LOG_FORMAT": "text",
        "RUN_WORKERS_IN_PROCESS": "0",
        "REMINDER_JOBS_OWNER": "0",  # relay and consumers, as the chart runs them
    }

    def start(name: str, *args: str, **env: str) -> Process:
        process = Process(tmp_path, name, *args, env={**base, **env})
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def wait_until(predicate, timeout: float = 30.0, *, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    logs = "\n".join(process.output()[-3000:] for process in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def publish_through(sidecar: InProcessDaprSidecar) -> None:
    """One relay pass from this process to the sidecar."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in sidecar.environ().items():
            patch.setenv(name, value)
        broker = DaprBroker(pubsub_name="pubsub")
        try:
            assert relay_once(broker).published
        finally:
            broker.close()


def updates(user_id: str, count: int) -> list[str]:
    return updates_of(user_id, [f"v{index}" for index in range(count)])


def test_a_relay_killed_between_publish_and_mark_loses_nothing(
    spawn, user_id, followups, relay_publishes
):
    # given 20 committed updates and a sidecar that accepts the relay's first publish, delivers
    # it, and keeps the answer back
    event_ids = updates(user_id, 20)
    recorded = [str(row.event_id) for row in OutboxEvent.objects.exclude(event_type="task.updated")]
    with InProcessDaprSidecar() as sidecar:
        dapr = {**sidecar.environ(), "EVENTS_BROKER": "dapr"}
        sidecar.hold_publishes()
        relay = spawn("relay", "relay_events", **dapr)
        wait_until(sidecar.publish_held.is_set, what="the first publish", processes=[relay])

        # when the relay process is killed before it could mark anything
        relay.kill9()

        # then nothing is marked sent, though the broker has the events
        assert OutboxEvent.objects.filter(sent_at__isnull=False).count() == 0
        assert len(sidecar.messages("task-events")) == 21

        # when a new relay starts and a consumer reads the topic
        sidecar.release()
        relay = spawn("relay", "relay_events", **dapr)
        wait_until(
            lambda: not OutboxEvent.objects.filter(sent_at__isnull=True).exists(),
            what="every row sent",
            processes=[relay],
        )
        consumer = spawn("consumer", "run_consumer", FOLLOWUPS, **dapr)
        wait_until(
            lambda: sum(followups_of(event_ids)) == 20, what="every follow-up", processes=[consumer]
        )
        wait_until(
            lambda: sidecar.pending(FOLLOWUPS, "task-events") == 0,
            what="every delivery answered",
            processes=[consumer],
        )
        assert consumer.terminate() == 0
        assert relay.terminate() == 0

        # then every event arrived (the first batch twice) and each was applied once
        delivered = [message.id for message in sidecar.messages("task-events")]
        for event_id in [*recorded, *event_ids]:
            assert delivered.count(event_id) == 2
        assert followups_of(event_ids) == [1] * 20


def test_a_consumer_killed_mid_batch_applies_each_event_once_after_restart(
    spawn, user_id, followups
):
    # given 30 published updates and a slow consumer process (batches of 10, 50 ms per event)
    event_ids = updates(user_id, 30)
    relay_all()
    consumer = spawn(
        "consumer",
        "run_consumer",
        FOLLOWUPS,
        EVENTS_BROKER="embedded",
        EVENTS_CONSUMER_BATCH_SIZE="10",
        FOLLOWUP_DELAY="0.05",
    )

    # when it is killed while its second batch is in hand
    wait_until(
        lambda: (
            ConsumerCursor.objects.filter(consumer=FOLLOWUPS)
            .exclude(snapshot=log.EVERYTHING_UNREAD, span_snapshot=None)
            .exists()
        ),
        what="the first batch",
        processes=[consumer],
    )
    time.sleep(0.2)
    consumer.kill9()

    # then what committed committed whole, nothing twice, and not everything yet
    applied = followups_of(event_ids)
    assert set(applied) <= {0, 1}
    assert 9 <= sum(applied) < 30

    # when a new process starts, then every event ends up applied exactly once
    consumer = spawn("consumer", "run_consumer", FOLLOWUPS, EVENTS_BROKER="embedded")
    wait_until(lambda: sum(followups_of(event_ids)) == 30, what="the rest", processes=[consumer])
    assert consumer.terminate() == 0
    assert followups_of(event_ids) == [1] * 30


def test_a_dapr_consumer_killed_with_a_message_in_hand_gets_it_again(
    spawn, user_id, followups, relay_publishes
):
    # given five updates on the topic and a slow consumer process
    event_ids = updates(user_id, 5)
    with InProcessDaprSidecar() as sidecar:
        dapr = {**sidecar.environ(), "EVENTS_BROKER": "dapr"}
        publish_through(sidecar)
        consumer = spawn("consumer", "run_consumer", FOLLOWUPS, FOLLOWUP_DELAY="1.0", **dapr)

        # when it is killed while handling a message (delivered, not answered)
        wait_until(
            lambda: (
                sidecar.in_flight(FOLLOWUPS, "task-events") == 1
                and len(sidecar.answered(FOLLOWUPS)) >= 1
            ),
            what="a message in hand",
            processes=[consumer],
        )
        consumer.kill9()

        # then a new process gets that message again and every update is applied once
        consumer = spawn("consumer", "run_consumer", FOLLOWUPS, **dapr)
        wait_until(
            lambda: sidecar.pending(FOLLOWUPS, "task-events") == 0,
            what="every delivery answered",
            processes=[consumer],
        )
        assert consumer.terminate() == 0
        assert followups_of(event_ids) == [1] * 5


def test_one_message_delivered_to_two_consumer_processes_at_once_applies_once(
    spawn, user_id, followups, relay_publishes
):
    # given two consumer processes of one consumer, and a broker that hands each message to both
    event_ids = updates(user_id, 5)
    with InProcessDaprSidecar(duplicate_deliveries=True) as sidecar:
        dapr = {**sidecar.environ(), "EVENTS_BROKER": "dapr"}
        consumers = [
            spawn(f"consumer{index}", "run_consumer", FOLLOWUPS, FOLLOWUP_DELAY="0.2", **dapr)
            for index in range(2)
        ]
        wait_until(
            lambda: sidecar.subscribers(FOLLOWUPS, "task-events") == 2,
            what="two subscribers",
            processes=consumers,
        )

        # when the events are published
        publish_through(sidecar)
        wait_until(
            lambda: sidecar.pending(FOLLOWUPS, "task-events") == 0,
            what="every delivery answered",
            processes=consumers,
        )

        # then both processes answered every update with success, and each applied once
        for event_id in event_ids:
            answers = [a for a in sidecar.answered(FOLLOWUPS) if a.message_id == event_id]
            assert [answer.status for answer in answers] == ["success", "success"]
            assert len({answer.stream_id for answer in answers}) == 2
        assert followups_of(event_ids) == [1] * 5
        for process in consumers:
            assert process.terminate() == 0


def test_sigterm_finishes_the_message_in_hand_then_stops(
    spawn, user_id, followups, relay_publishes
):
    # given two updates and a consumer that takes a second per event
    event_ids = updates(user_id, 2)
    with InProcessDaprSidecar() as sidecar:
        dapr = {**sidecar.environ(), "EVENTS_BROKER": "dapr"}
        publish_through(sidecar)
        consumer = spawn("consumer", "run_consumer", FOLLOWUPS, FOLLOWUP_DELAY="1.0", **dapr)
        # (the task.created event is answered at once; then the first update is in hand)
        wait_until(
            lambda: (
                len(sidecar.answered(FOLLOWUPS)) == 1
                and sidecar.in_flight(FOLLOWUPS, "task-events") == 1
            ),
            what="the first update in hand",
            processes=[consumer],
        )

        # when SIGTERM arrives
        code = consumer.terminate()

        # then the process finished that update, answered it, and exited cleanly
        assert code == 0, consumer.output()
        assert followups_of(event_ids) == [1, 0]
        assert [a.status for a in sidecar.answered(FOLLOWUPS) if a.message_id == event_ids[0]] == [
            "success"
        ]
        assert "stopped after 2 events" in consumer.output()
