"""Who did what, and undo, on REST and MCP over real HTTP: every event names its actor (the
surface, the MCP client, the token), history shows it, and a token can take back its own
latest change, and only that."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from core.auth import issue_token
from events.consumers import get_consumer
from events.models import OutboxEvent
from events.schemas import parse_envelope
from events.tests.support import consume_all, relay_all
from tasks import services
from tasks.consumers import NAME as AUDIT
from tasks.models import Task
from tasks.tests.test_mcp_surface import MODERN, Rpc, ok, refused

pytestmark = pytest.mark.django_db(transaction=True)


def _sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def _last_actor(user_id: str) -> dict:
    row = OutboxEvent.objects.filter(user_id=user_id).order_by("-sequence").first()
    actor = parse_envelope(row.envelope).actor
    return actor.model_dump(mode="json", exclude_none=True)


class Rest:
    def __init__(self, server, token: str):
        self.base = f"{server.url}/api"
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": "rest-test/2"}

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)

    def patch(self, path: str, body: dict) -> httpx.Response:
        return httpx.patch(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers, timeout=30)


# --- who did what -------------------------------------------------------------------------


def test_each_surface_is_recorded_as_the_actor(server, user_id):
    token = issue_token(user_id)
    jti_token = issue_token(user_id, extra={"jti": "token-7"})

    created = Rest(server, token).post("/tasks/", {"title": "From REST"})
    assert created.status_code == 201, created.text
    assert _last_actor(user_id) == {
        "surface": "rest",
        "token_id": _sha(token),
        "user_agent": "rest-test/2",
    }

    ok(Rpc(server, jti_token, MODERN).call("update_task", task_id=created.json()["id"], title="x"))
    assert _last_actor(user_id) == {
        "surface": "mcp",
        "client": {"name": "surface-test", "version": "1"},
        "token_id": "token-7",
    }

    services.task_complete(user_id=user_id, task_id=created.json()["id"])
    assert _last_actor(user_id) == {"surface": "system"}


def test_a_2025_client_without_a_kept_handshake_is_named_by_its_user_agent(server, user_id):
    token = issue_token(user_id)

    ok(Rpc(server, token, "2025-11-25").call("add_task", title="Legacy"))

    actor = _last_actor(user_id)
    assert actor["surface"] == "mcp" and actor["token_id"] == _sha(token)
    assert actor["user_agent"].startswith("python-httpx/")
    assert "client" not in actor


def test_history_shows_who_made_each_change(server, user_id):
    token = issue_token(user_id)
    rest = Rest(server, token)
    task_id = rest.post("/tasks/", {"title": "Audited"}).json()["id"]
    ok(Rpc(server, token, MODERN).call("complete_task", task_id=task_id))
    relay_all()
    consume_all(get_consumer(AUDIT))

    rest_history = rest.get(f"/tasks/{task_id}/history/").json()["results"]
    mcp_history = ok(Rpc(server, token, MODERN).call("task_history", task_id=task_id))

    assert [entry["actor"]["surface"] for entry in rest_history] == ["rest", "mcp"]
    assert mcp_history["entries"][1]["actor"]["client"] == {
        "name": "surface-test",
        "version": "1",
    }
    text = Rpc(server, token, MODERN).call("task_history", task_id=task_id)["content"][0]["text"]
    assert "task.completed (completed, completed_at) by mcp (surface-test 1)" in text


# --- undo ---------------------------------------------------------------------------------


def test_undo_an_update_sets_the_fields_back_as_a_new_change(server, user_id):
    token = issue_token(user_id)
    rest = Rest(server, token)
    task_id = rest.post("/tasks/", {"title": "Before", "priority": "low"}).json()["id"]
    assert rest.patch(f"/tasks/{task_id}/", {"title": "After", "priority": "high"}).is_success
    events_before = OutboxEvent.objects.filter(user_id=user_id).count()

    answer = rest.post(f"/tasks/{task_id}/undo/")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["action"] == "reverted" and body["undone"]["event_type"] == "task.updated"
    assert (body["task"]["title"], body["task"]["priority"]) == ("Before", "low")
    assert OutboxEvent.objects.filter(user_id=user_id).count() == events_before + 1
    undo_event = parse_envelope(
        OutboxEvent.objects.filter(user_id=user_id).order_by("-sequence").first().envelope
    )
    assert undo_event.event_type == "task.updated"
    assert str(undo_event.actor.undoes) == body["undone"]["event_id"]


def test_undo_through_mcp_each_kind_of_change(server, user_id):
    token = issue_token(user_id)
    rpc = Rpc(server, token, MODERN)

    created = ok(rpc.call("add_task", title="New"))
    undone = ok(rpc.call("undo_last_change", task_id=created["task_id"]))
    assert undone["action"] == "trashed" and undone["task"]["deleted_at"] is not None

    kept = ok(rpc.call("add_task", title="Kept"))
    ok(rpc.call("complete_task", task_id=kept["task_id"]))
    reopened = ok(rpc.call("undo_last_change", task_id=kept["task_id"]))
    assert reopened["action"] == "reverted" and reopened["task"]["completed"] is False

    ok(rpc.call("delete_task", task_id=kept["task_id"]))
    restored = ok(rpc.call("undo_last_change", task_id=kept["task_id"]))
    assert restored["action"] == "restored" and restored["task"]["deleted_at"] is None
    assert Task.objects.get(pk=kept["task_id"]).deleted_at is None


def test_undo_is_refused_after_someone_elses_later_change(server, user_id):
    mine, other_device = issue_token(user_id), issue_token(user_id, extra={"jti": "phone"})
    task_id = Rest(server, mine).post("/tasks/", {"title": "Mine"}).json()["id"]
    assert Rest(server, other_device).patch(f"/tasks/{task_id}/", {"title": "Phone"}).is_success

    refusal = Rest(server, mine).post(f"/tasks/{task_id}/undo/")
    error = refused(Rpc(server, mine, MODERN).call("undo_last_change", task_id=task_id))

    assert refusal.status_code == 409 and refusal.json()["error"]["code"] == "conflict"
    assert error["code"] == "conflict"
    assert Task.objects.get(pk=task_id).title == "Phone"


def test_undo_without_a_change_of_this_token_or_too_late(server, user_id):
    token = issue_token(user_id)
    task = services.task_create(user_id=user_id, title="By the system")

    nothing = Rest(server, token).post(f"/tasks/{task.pk}/undo/")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_undo"

    Rest(server, token).patch(f"/tasks/{task.pk}/", {"title": "Mine"})
    OutboxEvent.objects.filter(user_id=user_id).update(
        created_at=timezone.now() - timedelta(minutes=11)
    )
    late = Rest(server, token).post(f"/tasks/{task.pk}/undo/")
    assert late.status_code == 409 and late.json()["error"]["code"] == "nothing_to_undo"
    assert Task.objects.get(pk=task.pk).title == "Mine"


def test_undo_of_another_users_task_is_not_found(server, user_id, other_user_id):
    theirs = services.task_create(user_id=other_user_id, title="Theirs")

    answer = Rest(server, issue_token(user_id)).post(f"/tasks/{theirs.pk}/undo/")

    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_an_admin_action_is_recorded_as_the_operator(admin_client, admin_user, user_id):
    task = services.task_create(user_id=user_id, title="Operated")

    admin_client.post(
        "/admin/tasks/task/", {"action": "complete_tasks", "_selected_action": [task.pk]}
    )

    assert Task.objects.get(pk=task.pk).completed
    assert _last_actor(user_id) == {"surface": "admin", "admin_user": admin_user.username}
