"""The fault run in small, on every ``make test``: while task changes stream in through the
services, the relay and a consumer process are killed with SIGKILL at random moments and started
again; afterwards every invariant of ``bench.reliability.invariants`` holds.

(``python manage.py fault_check`` is the full version: the server, every consumer and the
scheduler killed too, PostgreSQL and Redis restarted, WebSockets checked.)
"""

from __future__ import annotations

import bisect
import os
import random
import time

import pytest
from django.conf import settings
from django.db import connection

from bench.benchmarks import database_url
from bench.reliability import invariants
from bench.reliability.processes import Worker, manage
from tasks import services
from tasks.errors import TaskError

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "faulty-"
STREAM_SECONDS = 12.0
KILLS_EACH = 2


@pytest.fixture
def workers(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
        "EVENTS_BROKER": "embedded",
        "RUN_WORKERS_IN_PROCESS": "0",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    commands = {
        "relay": ("relay_events",),
        "audit": ("run_consumer", "audit"),
        "recurrence": ("run_consumer", "recurrence"),
    }
    started = {
        name: Worker(
            name,
            manage(*args, "--metrics-port", "0"),
            env=env,
            cwd=settings.BASE_DIR,
            logs=tmp_path,
        )
        for name, args in commands.items()
    }
    for worker in started.values():
        worker.start()
    yield started
    for worker in started.values():
        worker.stop(timeout=15)


class Stream:
    """Changes of a few users through the services, with a ledger of what committed."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.users = [f"{PREFIX}{n}" for n in range(3)]
        self.mine: dict[str, dict[int, bool]] = {user: {} for user in self.users}  # id -> done
        self.ledger: list[invariants.Ack] = []

    def step(self) -> None:
        from datetime import timedelta

        from django.utils import timezone

        user = self.rng.choice(self.users)
        mine = self.mine[user]
        roll = self.rng.random()
        try:
            if not mine or roll < 0.3:
                recurring = self.rng.random() < 0.5
                task = services.task_create(
                    user_id=user,
                    title=f"stream {self.rng.randrange(10**6)}",
                    due_date=timezone.now() + timedelta(minutes=self.rng.choice([-30, 10]))
                    if recurring
                    else None,
                    recurrence_pattern="daily" if recurring else None,
                )
                mine[task.pk] = False
                self.ledger.append(invariants.Ack(task.pk, "created", task.version))
                return
            task_id = self.rng.choice(sorted(mine))
            if roll < 0.55:
                task, _ = services.task_update(
                    user_id=user, task_id=task_id, changes={"title": f"v{self.rng.random()}"}
                )
                kind = "updated"
            elif roll < 0.8 and not mine[task_id]:
                task, kind = services.task_complete(user_id=user, task_id=task_id), "completed"
            elif roll < 0.9 and mine[task_id]:
                task, kind = services.task_reopen(user_id=user, task_id=task_id), "reopened"
            elif roll >= 0.9:
                services.task_delete(user_id=user, task_id=task_id, stop_series=roll > 0.95)
                del mine[task_id]
                self.ledger.append(invariants.Ack(task_id, "deleted"))
                return
            else:
                return
            mine[task_id] = task.completed
            self.ledger.append(invariants.Ack(task_id, kind, task.version))
        except TaskError as exc:  # nothing the stream does is refused
            raise AssertionError(f"a change was refused: {exc}") from exc


def _kill_plan(rng: random.Random, names: list[str]) -> list[tuple[float, str, float]]:
    """(when, which, downtime): each process killed ``KILLS_EACH`` times at random moments."""
    plan = [
        (rng.uniform(0.5, STREAM_SECONDS - 2), name, rng.uniform(0.05, 1.0))
        for name in names
        for _ in range(KILLS_EACH)
    ]
    return sorted(plan)


def test_kill_9_of_relay_and_consumer_mid_stream_loses_and_repeats_nothing(workers):
    # given a stream of changes, and a plan to kill the relay and the recurrence consumer
    seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    stream = Stream(rng)
    plan = _kill_plan(rng, ["relay", "recurrence"])
    restarts: list[tuple[float, str]] = []
    killed = []

    # when they are killed with SIGKILL at those moments while the changes go on
    began = time.monotonic()
    while time.monotonic() - began < STREAM_SECONDS:
        now = time.monotonic() - began
        while plan and plan[0][0] <= now:
            _, name, downtime = plan.pop(0)
            if not workers[name].running:  # still down from its last kill: kill it once it is up
                bisect.insort(plan, (now + 0.2, name, downtime))
                break
            workers[name].kill9()
            killed.append(name)
            restarts.append((now + downtime, name))
        for due in [entry for entry in restarts if entry[0] <= now]:
            restarts.remove(due)
            if not workers[due[1]].running:
                workers[due[1]].start()
        stream.step()
        time.sleep(rng.uniform(0.0, 0.04))
    for worker in workers.values():
        if not worker.running:
            worker.start()

    # then, once the pipeline is idle, every invariant holds
    specs = invariants.ConsumerSpec.registered("audit", "recurrence")
    deadline = time.monotonic() + 60
    while True:
        with connection.cursor() as cursor:
            if invariants.backlog(cursor, specs, reminders=False) == 0:
                break
        if time.monotonic() > deadline:
            logs = "\n".join(w.tail() for w in workers.values())
            raise AssertionError(f"the pipeline did not drain (seed {seed})\n{logs}")
        time.sleep(0.2)
    with connection.cursor() as cursor:
        report = invariants.check(cursor, user_prefix=PREFIX, consumers=specs, ledger=stream.ledger)
    assert sorted(killed) == ["recurrence"] * KILLS_EACH + ["relay"] * KILLS_EACH, killed
    assert len(stream.ledger) > 100, "the stream should have made many changes"
    assert report.counts["events.task.completed"] > 0
    assert report.ok, f"seed {seed}: " + "\n".join(report.problems())
    recurrence = next(c for c in report.checks if c.name.startswith("one next instance"))
    assert recurrence.checked > 0, "some recurring tasks should have been streamed"


def test_the_invariants_catch_a_lost_event_and_a_double_application(user_id):
    # given a consistent pipeline state
    from events.consumers import get_consumer
    from events.models import OutboxEvent, OutboxPending, ProcessedEvent
    from events.tests.support import consume_all, relay_all
    from tasks.models import Task

    user = f"{PREFIX}check-{user_id}"
    task = services.task_create(
        user_id=user,
        title="series",
        due_date="2020-01-01T09:00:00Z",
        recurrence_pattern="daily",
    )
    services.task_complete(user_id=user, task_id=task.pk)
    specs = invariants.ConsumerSpec.registered("audit", "recurrence")
    for _ in range(2):  # the next instance's own event goes round once more
        relay_all()
        for spec in specs:
            consume_all(get_consumer(spec.name))
    ledger = [invariants.Ack(task.pk, "created", 1), invariants.Ack(task.pk, "completed", 2)]
    with connection.cursor() as cursor:
        report = invariants.check(cursor, user_prefix=user, consumers=specs, ledger=ledger)
    assert report.ok, report.problems()

    # and a published event still in the relay's queue (it would go out again) is reported
    published = OutboxEvent.objects.filter(user_id=user).first()
    queued = OutboxPending.objects.create(id=published.pk)
    with connection.cursor() as cursor:
        report = invariants.check(cursor, user_prefix=user, consumers=specs, ledger=ledger)
    assert {check.name for check in report.checks if check.problems} == {
        "every event went through the relay"
    }
    queued.delete()

    # when an event disappears, an idempotency key is lost and a second next instance appears
    OutboxEvent.objects.filter(user_id=user, event_type="task.completed").delete()
    ProcessedEvent.objects.filter(consumer="audit").delete()
    services.task_create(
        user_id=user,
        title="series",
        due_date="2099-01-01T09:00:00Z",
        recurrence_pattern="daily",
        series_id=Task.objects.get(pk=task.pk).series_id,
        series_index=5,
    )

    # then each of those is reported
    with connection.cursor() as cursor:
        report = invariants.check(cursor, user_prefix=user, consumers=specs, ledger=ledger)
    broken = {check.name for check in report.checks if check.problems}
    assert "per-user sequences are 1..last, each once" in broken
    assert "every acknowledged change has its event" in broken
    assert "every consumer recorded every event it wants" in broken
    assert "one next instance per completed recurring task" in broken


def test_a_database_that_is_down_answers_503_with_retry_after(api, monkeypatch):
    """Regression: while PostgreSQL restarted, the API answered Django's HTML 500 page (a
    traceback with DEBUG on); a client could not tell that trying again would work."""
    from django.db import OperationalError

    from tasks import selectors

    def down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "task_list_for_user", down)
    monkeypatch.setattr(services, "task_create", down)
    for response in (
        api.get("/api/tasks/"),
        api.post("/api/tasks/", {"title": "x"}, format="json"),
    ):
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "unavailable"
