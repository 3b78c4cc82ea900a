"""Idempotency-Key through real servers: concurrent identical requests, and a server killed
with SIGKILL after the commit and before the answer."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection

from bench.benchmarks import bench_server, database_url, server_env
from core.auth import issue_token
from events.models import OutboxEvent
from idempotency.models import IdempotencyKey
from tasks.models import Task
from tasks.signals import task_changed
from todo_project.testing import end_other_database_connections

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user)}", "Idempotency-Key": key}


class _SlowWrites:
    """Holds every task write inside its transaction for ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, **kwargs):
        time.sleep(self.seconds)

    def __enter__(self):
        task_changed.connect(self, weak=False, dispatch_uid="slow-writes")
        return self

    def __exit__(self, *exc):
        task_changed.disconnect(dispatch_uid="slow-writes")


def _post_together(url: str, headers: dict, body: dict, *, stagger: float) -> list[httpx.Response]:
    def send(delay: float) -> httpx.Response:
        time.sleep(delay)
        return httpx.post(f"{url}/api/tasks/", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(send, [0.0, stagger]))


def test_two_identical_requests_at_once_write_once_and_answer_alike(server):
    user = "idem-concurrent"
    with _SlowWrites(0.5):
        first, second = _post_together(
            server.url, _headers(user, "same"), {"title": "Only once"}, stagger=0.1
        )

    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert first.headers["Location"] == second.headers["Location"]
    assert [r.headers.get("Idempotent-Replayed") for r in (first, second)] == [None, "true"]
    assert Task.objects.filter(user_id=user).count() == 1
    assert OutboxEvent.objects.filter(user_id=user, event_type="task.created").count() == 1


def test_a_request_still_running_after_the_wait_is_409(server, settings):
    user = "idem-in-flight"
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.2
    with _SlowWrites(1.5):
        first, second = _post_together(
            server.url, _headers(user, "slow"), {"title": "Slow"}, stagger=0.2
        )

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_flight"
    assert second.headers["Retry-After"]
    # once the first has answered, the retry gets its answer
    retry = httpx.post(
        f"{server.url}/api/tasks/", json={"title": "Slow"}, headers=_headers(user, "slow")
    )
    assert (retry.status_code, retry.content) == (201, first.content)
    assert Task.objects.filter(user_id=user).count() == 1


def _wait_for(path, process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the write never committed"
        time.sleep(0.05)


def test_a_retry_after_a_kill_between_commit_and_answer_gets_the_stored_answer(tmp_path):
    # given a server that holds its answer after the commit (a test-only middleware)
    user, body = "idem-killed", {"title": "Survives the crash"}
    headers = _headers(user, "crash-1")
    marker = tmp_path / "committed"
    url = database_url(connection.settings_dict["NAME"])
    faulty = server_env(
        url,
        DJANGO_SETTINGS_MODULE="idempotency.tests.fault_settings",
        RUN_WORKERS_IN_PROCESS="0",
        FAULT_MARKER=str(marker),
    )
    outcome: list = []
    with bench_server(faulty) as (port, process):

        def send() -> None:
            try:
                outcome.append(
                    httpx.post(
                        f"http://127.0.0.1:{port}/api/tasks/",
                        json=body,
                        headers=headers,
                        timeout=60,
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        client = threading.Thread(target=send)
        client.start()
        # when the write has committed, the server is killed before it answers
        _wait_for(marker, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        client.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)
    (task,) = Task.objects.filter(user_id=user)
    assert IdempotencyKey.objects.get(user_id=user, key="crash-1").status == 201

    # then a retry on a restarted server answers the stored answer, and writes nothing
    with bench_server(server_env(url, RUN_WORKERS_IN_PROCESS="0")) as (port, _):
        retry = httpx.post(
            f"http://127.0.0.1:{port}/api/tasks/", json=body, headers=headers, timeout=30
        )
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == task.pk
    assert retry.headers["Location"] == f"/api/tasks/{task.pk}/"
    assert Task.objects.filter(user_id=user).count() == 1
    assert OutboxEvent.objects.filter(user_id=user, event_type="task.created").count() == 1
    end_other_database_connections()
