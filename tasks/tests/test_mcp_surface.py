"""The MCP surface beyond the Phase III tools, over real HTTP: each protocol version end to
end, the hints on every tool, the tools for every REST capability, cursors, token scopes,
resources and prompts."""

from __future__ import annotations

import json
from io import StringIO

import httpx
import jwt
import pytest
from django.conf import settings
from django.core.management import call_command

from core.auth import issue_token
from tasks import services
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

HANDSHAKE_VERSIONS = ("2025-06-18", "2025-11-25")
MODERN = "2026-07-28"

# Every tool's behaviour hints: (readOnly, destructive, idempotent, openWorld).
HINTS = {
    "add_task": (False, False, False, False),
    "list_tasks": (True, False, True, False),
    "get_task": (True, False, True, False),
    "task_history": (True, False, True, False),
    "complete_task": (False, False, True, False),
    "reopen_task": (False, False, True, False),
    "update_task": (False, False, True, False),
    "delete_task": (False, True, True, False),
    "list_notifications": (True, False, True, False),
    "mark_notification_read": (False, False, True, False),
    "dismiss_notification": (False, False, True, False),
    "skip_occurrence": (False, False, True, False),
    "reschedule_occurrence": (False, False, True, False),
    "preview_occurrences": (True, False, True, False),
    "restore_task": (False, False, True, False),
    "list_trash": (True, False, True, False),
    "changes_since": (True, False, True, False),
    "add_tasks": (False, False, False, False),
    "update_tasks": (False, False, True, False),
    "complete_tasks": (False, False, True, False),
    "undo_last_change": (False, True, False, False),
}


class Rpc:
    """JSON-RPC over HTTP to ``/mcp`` at one protocol version, as one user."""

    def __init__(self, server, token: str, version: str):
        self.url = f"{server.url}/mcp"
        self.token = token
        self.version = version
        self.ids = iter(range(1, 10_000))
        if version != MODERN:
            answer = self._post(
                "initialize",
                {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "surface-test", "version": "1"},
                },
            )
            assert answer["result"]["protocolVersion"] == version

    def _post(self, method: str, params: dict) -> dict:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if method != "initialize":
            headers["MCP-Protocol-Version"] = self.version
        if self.version == MODERN:
            headers["Mcp-Method"] = method
            if method == "tools/call":
                headers["Mcp-Name"] = params["name"]
            params = {
                **params,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "surface-test", "version": "1"},
                },
            }
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        response = httpx.post(self.url, json=body, headers=headers, timeout=30)
        assert response.headers["content-type"].startswith("application/json"), response.text
        return response.json()

    def result(self, method: str, **params) -> dict:
        answer = self._post(method, params)
        assert "result" in answer, answer
        return answer["result"]

    def error(self, method: str, **params) -> dict:
        answer = self._post(method, params)
        assert "error" in answer, answer
        return answer["error"]

    def call(self, name: str, **arguments) -> dict:
        return self.result("tools/call", name=name, arguments=arguments)


def ok(result: dict) -> dict:
    assert result["isError"] is False, result["content"][0]["text"]
    return result["structuredContent"]


def refused(result: dict) -> dict:
    assert result["isError"] is True
    assert "structuredContent" not in result
    error = result["_meta"]["error"]
    assert f"(code: {error['code']})" in result["content"][0]["text"]
    return error


@pytest.fixture
def rpc(server, user_id):
    return Rpc(server, issue_token(user_id), HANDSHAKE_VERSIONS[-1])


@pytest.mark.parametrize("version", [*HANDSHAKE_VERSIONS, MODERN])
def test_each_protocol_version_works_end_to_end(server, user_id, version):
    task = services.task_create(user_id=user_id, title="Versioned")
    rpc = Rpc(server, issue_token(user_id), version)

    tools = {tool["name"]: tool for tool in rpc.result("tools/list")["tools"]}
    got = ok(rpc.call("get_task", task_id=task.pk))
    missing = refused(rpc.call("get_task", task_id=task.pk + 10_000))

    assert set(tools) == set(HINTS)
    assert got["title"] == "Versioned" and got["task_id"] == task.pk
    assert (missing["code"], missing["field"]) == ("not_found", "task_id")


def test_every_tool_states_every_behaviour_hint(rpc):
    tools = rpc.result("tools/list")["tools"]

    hints = {
        tool["name"]: tuple(
            tool["annotations"][name]
            for name in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
        )
        for tool in tools
    }

    assert hints == HINTS
    for tool in tools:
        assert tool["inputSchema"]["additionalProperties"] is False, tool["name"]
        assert tool["outputSchema"]["type"] == "object", tool["name"]


def test_get_reopen_and_history_as_rest_has_them(rpc, user_id):
    task = services.task_create(user_id=user_id, title="Round trip")
    services.task_complete(user_id=user_id, task_id=task.pk)

    reopened = ok(rpc.call("reopen_task", task_id=task.pk))
    got = ok(rpc.call("get_task", task_id=task.pk))
    history = ok(rpc.call("task_history", task_id=task.pk))

    assert reopened["status"] == "reopened" and reopened["completed"] is False
    assert got["version"] == Task.objects.get(pk=task.pk).version == 3
    assert history["task_id"] == task.pk and history["total_count"] == len(history["entries"])


def test_delete_with_stop_series_ends_the_series(rpc, user_id):
    task = services.task_create(
        user_id=user_id, title="Daily", due_date="2030-01-01T09:00:00Z", recurrence_pattern="daily"
    )

    deleted = ok(rpc.call("delete_task", task_id=task.pk, stop_series=True))
    again = refused(rpc.call("get_task", task_id=task.pk))
    bad = refused(rpc.call("delete_task", task_id=task.pk, stop_series="yes"))

    assert deleted == {"task_id": task.pk, "status": "deleted", "title": "Daily"}
    assert again["code"] == "not_found"
    assert bad["field"] == "stop_series"


def test_list_filters_match_rest(rpc, user_id, api):
    services.task_create(user_id=user_id, title="a", priority="high", tags=["home"])
    services.task_create(user_id=user_id, title="b", priority="urgent", tags=["work"])
    services.task_create(
        user_id=user_id,
        title="c",
        priority="low",
        tags=["home", "x"],
        due_date="2030-01-05T00:00:00Z",
    )
    services.task_create(user_id=user_id, title="d", due_date="2030-02-05T00:00:00Z")
    cases = [
        ({"priority": ["high", "urgent"]}, "priority=high,urgent"),
        ({"tags": ["work", "x"], "tags_mode": "any"}, "tags=work,x&tags_mode=any"),
        ({"tags": ["home", "x"]}, "tags=home,x"),
        (
            {"due_before": "2030-02-01", "due_after": "2030-01-01"},
            "due_before=2030-02-01&due_after=2030-01-01",
        ),
        ({"due": "none"}, "due=none"),
        ({"ordering": ["-priority", "title"]}, "ordering=-priority,title"),
    ]
    for arguments, query in cases:
        listed = ok(rpc.call("list_tasks", **arguments))
        rest = api.get(f"/api/tasks/?{query}").json()
        assert [t["id"] for t in listed["tasks"]] == [t["id"] for t in rest["results"]], query
        assert listed["total_count"] == rest["count"], query


def test_cursor_pages_through_and_refuses_forged_or_foreign_cursors(rpc, user_id):
    for number in range(5):
        services.task_create(user_id=user_id, title=f"t{number}", priority="high")

    seen, cursor = [], None
    while True:
        arguments = {"limit": 2, "priority": "high"} | ({"cursor": cursor} if cursor else {})
        page = ok(rpc.call("list_tasks", **arguments))
        seen += [task["title"] for task in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    first = ok(rpc.call("list_tasks", limit=2))["next_cursor"]
    other_filters = refused(rpc.call("list_tasks", limit=2, priority="low", cursor=first))
    forged = refused(rpc.call("list_tasks", cursor=first[:-3] + "abc"))
    both = refused(rpc.call("list_tasks", cursor=first, offset=2))

    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    assert other_filters["code"] == forged["code"] == "invalid_cursor"
    assert both["code"] == "conflict"


def test_a_read_only_token_reads_everywhere_and_writes_nowhere(server, user_id):
    task = services.task_create(user_id=user_id, title="Look, don't touch")
    token = issue_token(user_id, extra={"scope": "tasks:read"})
    rpc = Rpc(server, token, HANDSHAKE_VERSIONS[-1])
    rest = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})

    assert ok(rpc.call("get_task", task_id=task.pk))["title"] == "Look, don't touch"
    assert rest.get("/api/tasks/").json()["count"] == 1
    assert rest.get("/api/notifications/").status_code == 200
    for name, arguments in [
        ("add_task", {"title": "no"}),
        ("complete_task", {"task_id": task.pk}),
        ("update_task", {"task_id": task.pk, "title": "no"}),
        ("delete_task", {"task_id": task.pk}),
        ("mark_notification_read", {"notification_id": 1}),
    ]:
        error = refused(rpc.call(name, **arguments))
        assert error["code"] == "insufficient_scope", name
        assert "tasks:write" in error["message"]
    for method, path in [
        ("POST", "/api/tasks/"),
        ("PATCH", f"/api/tasks/{task.pk}/"),
        ("DELETE", f"/api/tasks/{task.pk}/"),
        ("POST", f"/api/tasks/{task.pk}/complete/"),
    ]:
        answer = rest.request(method, path, json={"title": "no"})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "insufficient_scope", (method, path)
    row = Task.objects.get(pk=task.pk)
    assert (row.title, row.version, row.completed, row.deleted_at) == (
        "Look, don't touch",
        1,
        False,
        None,
    )
    assert Task.objects.filter(user_id=user_id).count() == 1


def test_a_write_token_and_an_unscoped_token_may_write(server, user_id):
    for extra in ({"scope": "tasks:read tasks:write"}, {"scope": "tasks:write"}, {}):
        rpc = Rpc(server, issue_token(user_id, extra=extra), HANDSHAKE_VERSIONS[-1])
        assert ok(rpc.call("add_task", title="allowed"))["status"] == "created", extra
    other = Rpc(server, issue_token(user_id, extra={"scope": "openid"}), HANDSHAKE_VERSIONS[-1])
    assert refused(other.call("list_tasks"))["code"] == "insufficient_scope"


def test_issue_token_mints_scoped_tokens():
    out = StringIO()
    call_command("issue_token", "someone", "--scope", "tasks:read", stdout=out)
    claims = jwt.decode(
        out.getvalue().strip(),
        settings.JWT_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False},
    )
    assert claims["scope"] == "tasks:read"
    with pytest.raises(Exception, match="--scope takes"):
        call_command("issue_token", "someone", "--scope", "tasks:admin")


def test_resources_are_json_and_only_the_users(rpc, user_id, other_user_id):
    from django.utils import timezone

    soon = (timezone.now() + timezone.timedelta(days=2)).isoformat()
    past = (timezone.now() - timezone.timedelta(days=2)).isoformat()
    upcoming = services.task_create(user_id=user_id, title="Soon", due_date=soon)
    services.task_create(user_id=user_id, title="Late", due_date=past)
    foreign = services.task_create(user_id=other_user_id, title="secret", due_date=past)

    listed = {r["uri"] for r in rpc.result("resources/list")["resources"]}
    read = rpc.result("resources/read", uri=f"task://{upcoming.pk}")["contents"][0]
    overdue = json.loads(rpc.result("resources/read", uri="tasks://overdue")["contents"][0]["text"])
    coming = json.loads(rpc.result("resources/read", uri="tasks://upcoming")["contents"][0]["text"])
    hidden = rpc.error("resources/read", uri=f"task://{foreign.pk}")

    assert listed == {"tasks://today", "tasks://overdue", "tasks://upcoming"}
    assert read["mimeType"] == "application/json"
    assert json.loads(read["text"])["title"] == "Soon"
    assert [t["title"] for t in overdue["tasks"]] == ["Late"]
    assert [t["title"] for t in coming["tasks"]] == ["Soon"]
    assert hidden["code"] == -32002 and hidden["data"]["code"] == "not_found"
    assert "secret" not in json.dumps(hidden)


def test_prompts_are_built_on_the_tools(rpc):
    names = {p["name"] for p in rpc.result("prompts/list")["prompts"]}
    plan = rpc.result("prompts/get", name="plan_my_day", arguments={"timezone": "Europe/Paris"})

    assert names == {"plan_my_day", "weekly_review", "triage_overdue"}
    text = plan["messages"][0]["content"]["text"]
    assert "Europe/Paris" in text and "list_tasks" in text
