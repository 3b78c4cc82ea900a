"""Snapshot + change feed under racing writes, through a real server: a client that lists its
tasks (``sequence``) and then replays ``/api/changes/`` from there ends with exactly the
server's state, and the page held exactly the changes up to its sequence (nothing missed,
nothing repeated)."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest
from django.db import connection
from django.db.models.expressions import RawSQL

from core.auth import issue_token
from events.models import OutboxEvent
from tasks import selectors, services

pytestmark = pytest.mark.django_db(transaction=True)

USER = "racing-user"
WRITE_SECONDS = 2.0


def _writer(seed: int, stop: threading.Event, errors: list) -> None:
    rng = random.Random(seed)
    try:
        while not stop.is_set():
            mine = list(services_task_ids())
            roll = rng.random()
            try:
                if len(mine) < 5 or (roll < 0.35 and len(mine) < 60):
                    services.task_create(user_id=USER, title=f"w{seed} {rng.random():.6f}")
                elif roll < 0.7:
                    services.task_update(
                        user_id=USER,
                        task_id=rng.choice(mine),
                        changes={"title": f"u{rng.random():.6f}"},
                    )
                elif roll < 0.85:
                    services.task_complete(user_id=USER, task_id=rng.choice(mine))
                else:
                    services.task_delete(user_id=USER, task_id=rng.choice(mine), permanent=True)
            except services_errors():
                pass  # the other writer deleted it first
    except Exception as exc:  # handed to the test, which fails
        errors.append(exc)
    finally:
        connection.close()


def services_task_ids():
    from tasks.models import Task

    return Task.objects.filter(user_id=USER, deleted_at__isnull=True).values_list("pk", flat=True)


def services_errors():
    from tasks.errors import TaskError

    return TaskError


def _snapshot(http: httpx.Client) -> tuple[int, dict[int, dict]]:
    response = http.get("/api/tasks/", params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] <= 100, "the test keeps every task on one page"
    assert response.headers["X-Sequence"] == str(body["sequence"])
    return body["sequence"], {task["id"]: task for task in body["results"]}


def _replay(http: httpx.Client, since: int, state: dict[int, dict]) -> list[dict]:
    applied = []
    while True:
        response = http.get("/api/changes/", params={"since": since, "limit": 50})
        assert response.status_code == 200, response.text
        body = response.json()
        for change in body["changes"]:
            if change.get("deleted"):
                state.pop(change["task_id"], None)
            else:
                state[change["task_id"]] = change["task"]
        applied += body["changes"]
        since = body["next_since"]
        if not body["has_more"]:
            return applied


def _versions_at(sequence: int) -> dict[int, int]:
    """Each task's version after the user's events up to ``sequence`` (from the log)."""
    versions: dict[int, int] = {}
    for event_type, payload in (
        OutboxEvent.objects.filter(user_id=USER, sequence__lte=sequence)
        .order_by("sequence")
        .values_list("event_type", "envelope__payload")
    ):
        if not event_type.startswith("task."):
            continue
        if event_type == "task.deleted":
            versions.pop(payload["task_id"], None)
        else:
            versions[payload["task_id"]] = payload["task_data"]["version"]
    return versions


def test_snapshot_and_changes_never_miss_or_repeat_a_change(server, monkeypatch):
    # given a page read that takes long enough for writes to commit while it runs (its
    # sequence is read after a pause, in the statement that reads the page)
    sequence_of = selectors.latest_sequence_expression

    def sequence_after_a_pause(**kwargs):
        sequence = sequence_of(**kwargs)
        return RawSQL(
            f"(SELECT ({sequence.sql}) FROM pg_sleep(0.02))",
            sequence.params,
            output_field=sequence.output_field,
        )

    monkeypatch.setattr(selectors, "latest_sequence_expression", sequence_after_a_pause)
    stop, errors = threading.Event(), []
    writers = [
        threading.Thread(target=_writer, args=(seed, stop, errors), daemon=True) for seed in (1, 2)
    ]
    headers = {"Authorization": f"Bearer {issue_token(USER)}"}
    snapshots = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        # when snapshots are taken while two writers change the user's tasks
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + WRITE_SECONDS
        while time.monotonic() < deadline:
            snapshots.append(_snapshot(http))
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        assert not errors, errors
        final_sequence, final = _snapshot(http)

        # then each snapshot holds exactly the changes up to its sequence
        assert len(snapshots) >= 10
        raced = 0
        for sequence, tasks in snapshots:
            assert {i: t["version"] for i, t in tasks.items()} == _versions_at(sequence)
            # and replaying the feed from it ends with the server's state, each change once
            state = dict(tasks)
            applied = _replay(http, sequence, state)
            assert [c["sequence"] for c in applied] == list(range(sequence + 1, final_sequence + 1))
            assert state == final
            raced += bool(applied)
        assert raced >= 5, "the writers did not race the snapshots"
