"""The MCP endpoint, driven by the official MCP client over real HTTP.

A uvicorn server runs the project's ASGI application in a thread of the test process, so it
uses the test database; its lifespan runs only the MCP session manager. Tests are
``transaction=True`` because the server's connections must see committed rows.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import httpx2
import jwt
import pytest
from django.conf import settings
from django.db import connection
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core.auth import issue_token
from events.models import OutboxEvent
from events.schemas import parse_envelope
from tasks import services
from tasks.models import Priority, Task
from tasks.validation import clean_due
from todo_project.testing import LiveServer, client_for

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {
    "add_task",
    "list_tasks",
    "get_task",
    "task_history",
    "complete_task",
    "reopen_task",
    "update_task",
    "delete_task",
    "list_notifications",
    "mark_notification_read",
    "dismiss_notification",
    "skip_occurrence",
    "reschedule_occurrence",
    "preview_occurrences",
    "restore_task",
    "list_trash",
    "changes_since",
    "add_tasks",
    "update_tasks",
    "complete_tasks",
    "undo_last_change",
}


# --- a real server and a real client ------------------------------------------------------


@pytest.fixture(scope="module")
def live(server):
    """The live server (conftest's ``server``) and its MCP endpoint."""
    return SimpleNamespace(base=server.url, url=f"{server.url}/mcp", port=server.port)


async def _session_calls(url: str, token: str | None, calls):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        results = []
        for name, arguments in calls:
            if name == "__list_tools__":
                results.append(await session.list_tools())
            else:
                results.append(await session.call_tool(name, arguments))
        return results


class Agent:
    """An MCP client for one user; each ``call`` is one session over HTTP."""

    def __init__(self, url: str, user: str, token: str | None = None):
        self.url = url
        self.user = user
        self.token = token if token is not None else issue_token(user)

    def calls(self, *calls):
        return asyncio.run(_session_calls(self.url, self.token, calls))

    def call(self, name: str, **arguments):
        return self.calls((name, arguments))[0]

    def ok(self, name: str, **arguments) -> dict:
        result = self.call(name, **arguments)
        assert not result.is_error, result.content[0].text
        assert result.content[0].type == "text" and result.content[0].text
        return result.structured_content

    def refused(self, name: str, **arguments) -> tuple[str, dict]:
        result = self.call(name, **arguments)
        assert result.is_error
        assert result.structured_content is None  # clients check it against the output schema
        return result.content[0].text, result.meta["error"]


@pytest.fixture
def agent(live, user_id):
    return Agent(live.url, user_id)


@pytest.fixture
def other_agent(live, other_user_id):
    return Agent(live.url, other_user_id)


def outbox(user: str) -> list:
    """The user's task events in the outbox (``events`` records one per committed change), each
    parsed through its schema. Reminder events, recorded beside them, are left out."""
    rows = OutboxEvent.objects.filter(user_id=user, event_type__startswith="task.")
    return [parse_envelope(row.envelope) for row in rows.order_by("sequence")]


def event_types(user: str) -> list[str]:
    return [event.event_type for event in outbox(user)]


def _rows(user: str) -> list[Task]:
    """The user's tasks that are not in the trash."""
    return list(Task.objects.filter(user_id=user, deleted_at__isnull=True).order_by("id"))


# --- discovery ----------------------------------------------------------------------------


def test_initialize_and_list_tools_with_schemas(agent):
    (listing,) = agent.calls(("__list_tools__", {}))
    tools = {tool.name: tool for tool in listing.tools}
    assert set(tools) == TOOLS

    add = tools["add_task"].input_schema
    props = add["properties"]
    assert add["required"] == ["title"]
    assert add["additionalProperties"] is False
    assert props["title"]["minLength"] == 1 and props["title"]["maxLength"] == 200
    assert _branch(props["description"])["maxLength"] == 2000
    assert _branch(props["tags"])["maxItems"] == 20
    assert _branch(props["tags"])["items"]["maxLength"] == 50
    assert _branch(props["priority"])["enum"] == ["low", "medium", "high", "urgent"]
    assert _branch(props["due_date"])["format"] == "date-time"
    assert _branch(props["recurrence_pattern"])["maxLength"] == 500
    assert _branch(props["reminder_time"])["type"] == "string"
    assert _branch(props["user_id"])["type"] == "string"
    for name in ("complete_task", "delete_task", "update_task"):
        schema = tools[name].input_schema
        assert schema["required"] == ["task_id"]
        assert schema["properties"]["task_id"]["type"] == "integer"
        assert schema["properties"]["task_id"]["minimum"] == 1

    listing_props = tools["list_tasks"].input_schema["properties"]
    assert tools["list_tasks"].input_schema.get("required", []) == []
    assert {"all", "pending", "completed"} <= set(_branch(listing_props["status"])["enum"])
    assert _branch(listing_props["due_date_filter"])["enum"] == [
        "overdue",
        "today",
        "this_week",
        "this_month",
    ]
    assert _branch(listing_props["sort_by"])["enum"] == [
        "created_at",
        "due_date",
        "priority",
        "status",
        "title",
    ]
    assert _branch(listing_props["sort_order"])["enum"] == ["asc", "desc"]
    assert listing_props["limit"]["maximum"] == 100 and listing_props["limit"]["default"] == 50
    assert listing_props["offset"]["minimum"] == 0
    assert _branch(listing_props["search"])["maxLength"] == 200

    assert tools["list_tasks"].annotations.read_only_hint is True
    assert tools["delete_task"].annotations.destructive_hint is True
    assert tools["complete_task"].annotations.idempotent_hint is True
    assert tools["add_task"].annotations.read_only_hint is False
    for tool in tools.values():
        assert tool.output_schema["type"] == "object"
        assert tool.description
    assert set(tools["add_task"].output_schema["required"]) >= {"task_id", "status", "title"}
    listed = tools["list_tasks"].output_schema
    assert set(listed["required"]) >= {"tasks", "total_count"}
    assert set(listed["properties"]["tasks"]["items"]["required"]) >= {
        "task_id",
        "id",
        "title",
        "completed",
        "priority",
        "due_date",
    }


def _branch(prop: dict) -> dict:
    """The non-null branch of an optional property."""
    if "anyOf" not in prop:
        return prop
    (branch,) = [item for item in prop["anyOf"] if item.get("type") != "null"]
    return branch


# --- Phase III contract -------------------------------------------------------------------


def test_phase_iii_minimal_arguments(agent, user_id):
    created = agent.ok("add_task", user_id=user_id, title="Buy groceries")
    task_id = created["task_id"]
    assert created["status"] == "created"
    assert created["title"] == "Buy groceries"
    assert created["id"] == task_id
    assert created["priority"] == "medium" and created["completed"] is False
    assert [t.pk for t in _rows(user_id)] == [task_id]

    listed = agent.ok("list_tasks", user_id=user_id)
    assert listed["total_count"] == 1
    (item,) = listed["tasks"]
    assert (item["task_id"], item["id"], item["title"], item["completed"]) == (
        task_id,
        task_id,
        "Buy groceries",
        False,
    )
    assert agent.ok("list_tasks", user_id=user_id, status="pending")["total_count"] == 1
    assert agent.ok("list_tasks", user_id=user_id, status="completed")["total_count"] == 0

    updated = agent.ok("update_task", user_id=user_id, task_id=task_id, title="Buy fruit")
    assert {k: updated[k] for k in ("task_id", "status", "title", "updated_fields")} == {
        "task_id": task_id,
        "status": "updated",
        "title": "Buy fruit",
        "updated_fields": ["title"],
    }

    completed = agent.ok("complete_task", user_id=user_id, task_id=task_id)
    assert completed == {"task_id": task_id, "status": "completed", "title": "Buy fruit"}
    assert Task.objects.get(pk=task_id).completed is True
    assert agent.ok("list_tasks", user_id=user_id, status="completed")["total_count"] == 1
    assert agent.ok("list_tasks", user_id=user_id, status="pending")["total_count"] == 0

    deleted = agent.ok("delete_task", user_id=user_id, task_id=task_id)
    assert deleted == {"task_id": task_id, "status": "deleted", "title": "Buy fruit"}
    assert _rows(user_id) == []

    # Each write produced exactly its one event, and the reads none.
    events = outbox(user_id)
    assert [(event.event_type, event.payload.task_id) for event in events] == [
        ("task.created", task_id),
        ("task.updated", task_id),
        ("task.completed", task_id),
        ("task.deleted", task_id),
    ]
    assert events[1].payload.changed_fields == ["title"]
    assert events[0].payload.task_data.title == "Buy groceries"


def test_user_id_is_optional_the_token_decides(agent, user_id):
    created = agent.ok("add_task", title="No user_id given")
    assert Task.objects.get(pk=created["task_id"]).user_id == user_id


def test_complete_is_idempotent(agent, user_id):
    task = services.task_create(user_id=user_id, title="Once")
    first = agent.ok("complete_task", task_id=task.pk)
    second = agent.ok("complete_task", task_id=task.pk)
    assert first == second == {"task_id": task.pk, "status": "completed", "title": "Once"}
    assert event_types(user_id) == ["task.created", "task.completed"]


# --- Phase V options ----------------------------------------------------------------------


def test_add_task_with_every_phase_v_option(agent, user_id):
    created = agent.ok(
        "add_task",
        user_id=user_id,
        title="Pay rent",
        description="Transfer to the landlord",
        priority="urgent",
        tags=["Home", "money", "home"],
        due_date="2031-03-31T09:00:00",
        recurrence_pattern="FREQ=MONTHLY;BYDAY=-1FR",
        reminder_time="1d",
        timezone="Europe/Paris",
    )
    assert created["status"] == "created"
    assert created["description"] == "Transfer to the landlord"
    assert created["priority"] == "urgent"
    assert created["tags"] == ["Home", "money"]
    assert created["due_date"] == "2031-03-31T07:00:00Z"  # 09:00 in Paris (summer time)
    assert created["reminder_time"] == "1d"
    assert created["remind_at"] == "2031-03-30T07:00:00Z"
    assert created["recurrence_pattern"] == "FREQ=MONTHLY;BYDAY=-1FR"
    assert created["series_id"] is not None
    assert created["timezone"] == "Europe/Paris"

    row = Task.objects.get(pk=created["task_id"])
    assert row.user_id == user_id
    assert row.priority == Priority.URGENT
    assert row.tags == ["Home", "money"]
    assert row.due_at == datetime(2031, 3, 31, 7, tzinfo=UTC)
    (event,) = outbox(user_id)
    assert event.event_type == "task.created"
    assert event.payload.task_data.model_dump(mode="json") == {
        key: value for key, value in created.items() if key not in {"task_id", "status"}
    }

    simple = agent.ok(
        "add_task",
        title="Water plants",
        priority="HIGH",
        due_date="2031-06-01T18:00:00Z",
        recurrence_pattern="weekly",
        reminder_time="2031-06-01T17:30:00Z",
    )
    assert simple["priority"] == "high"
    assert simple["recurrence_pattern"] == "weekly"
    assert simple["reminder_time"] == "2031-06-01T17:30:00Z"
    assert simple["remind_at"] == "2031-06-01T17:30:00Z"


def test_update_task_with_every_phase_v_option(agent, user_id):
    task = services.task_create(user_id=user_id, title="Draft", description="old")
    updated = agent.ok(
        "update_task",
        user_id=user_id,
        task_id=task.pk,
        title="Final report",
        description="Send to the board",
        priority="high",
        tags=["work"],
        due_date="2031-05-01T12:00:00Z",
        recurrence_pattern="monthly",
        reminder_time="2h",
        timezone="America/New_York",
    )
    assert updated["status"] == "updated"
    assert updated["task_id"] == task.pk
    assert updated["title"] == "Final report"
    assert set(updated["updated_fields"]) >= {
        "title",
        "description",
        "priority",
        "tags",
        "due_date",
        "recurrence_pattern",
        "reminder_time",
        "timezone",
    }
    row = Task.objects.get(pk=task.pk)
    assert (row.title, row.description, row.priority, row.tags) == (
        "Final report",
        "Send to the board",
        Priority.HIGH,
        ["work"],
    )
    assert row.due_at == datetime(2031, 5, 1, 12, tzinfo=UTC)
    assert row.remind_at == datetime(2031, 5, 1, 10, tzinfo=UTC)
    assert row.recurrence_rule == "monthly" and row.timezone == "America/New_York"
    assert row.version == 2

    # Empty strings clear, [] removes the tags, "none" stops the recurrence.
    cleared = agent.ok(
        "update_task",
        task_id=task.pk,
        description="",
        tags=[],
        recurrence_pattern="none",
        reminder_time="",
        due_date="",
    )
    assert (cleared["description"], cleared["tags"], cleared["due_date"]) == ("", [], None)
    assert (cleared["reminder_time"], cleared["recurrence_pattern"]) == (None, "none")

    # The same values again change nothing and announce nothing.
    same = agent.ok("update_task", task_id=task.pk, title="Final report")
    assert same["updated_fields"] == []
    assert event_types(user_id) == ["task.created", "task.updated", "task.updated"]


def test_list_tasks_with_every_phase_v_option(agent, user_id):
    now = datetime.now(UTC)
    end_of_today = now.replace(hour=23, minute=59, second=59, microsecond=0)
    week_end = end_of_today + timedelta(days=6 - now.weekday())
    make = services.task_create
    overdue = make(user_id=user_id, title="Renew passport", due_date=now - timedelta(days=40))
    today = make(user_id=user_id, title="Call the dentist", due_date=end_of_today, priority="high")
    this_week = make(user_id=user_id, title="Team meeting notes", due_date=week_end, tags=["work"])
    later = make(
        user_id=user_id,
        title="Plan meetup",
        due_date="2031-01-15T10:00:00Z",
        tags=["work", "Fun"],
        priority="low",
    )
    undated = make(user_id=user_id, title="Read a book", priority="urgent")
    done_overdue = make(user_id=user_id, title="Old chore", due_date=now - timedelta(days=3))
    services.task_complete(user_id=user_id, task_id=done_overdue.pk)

    queries = {
        "meet": {"search": "meet"},
        "dentist": {"search": "dentist"},
        "urgent": {"priority": "urgent"},
        "work by title": {"tags": ["work"], "sort_by": "title"},
        "work and fun": {"tags": ["WORK", "fun"]},
        "overdue": {"due_date_filter": "overdue"},
        "today": {"due_date_filter": "today"},
        "this week": {"due_date_filter": "this_week"},
        "this month": {"due_date_filter": "this_month"},
        "complete": {"status": "complete"},
        "incomplete": {"status": "incomplete"},
        "default": {},
        "oldest first": {"sort_by": "created_at", "sort_order": "asc"},
        "title": {"sort_by": "title"},
        "priority": {"sort_by": "priority"},
        "priority asc": {"sort_by": "priority", "sort_order": "asc"},
        "due": {"sort_by": "due_date"},
        "status": {"sort_by": "status"},
        "status desc": {"sort_by": "status", "sort_order": "desc"},
        "page": {"sort_by": "created_at", "sort_order": "asc", "limit": 2, "offset": 2},
        "last page": {"limit": 100, "offset": 5},
        "beyond": {"offset": 50},
    }
    results = agent.calls(*(("list_tasks", arguments) for arguments in queries.values()))
    assert not any(result.is_error for result in results)
    pages = {label: r.structured_content for label, r in zip(queries, results, strict=True)}
    ids = {label: [t["task_id"] for t in page["tasks"]] for label, page in pages.items()}

    assert set(ids["meet"]) == {later.pk, this_week.pk}  # as a prefix: meetup, meeting
    assert ids["dentist"] == [today.pk]
    assert ids["urgent"] == [undated.pk]
    assert ids["work by title"] == [later.pk, this_week.pk]
    assert ids["work and fun"] == [later.pk]
    assert ids["overdue"] == [overdue.pk]
    assert today.pk in ids["today"] and later.pk not in ids["today"]
    assert {today.pk, this_week.pk} <= set(ids["this week"])
    assert later.pk not in ids["this month"]
    assert ids["complete"] == [done_overdue.pk]
    assert len(ids["incomplete"]) == 5 and done_overdue.pk not in ids["incomplete"]

    all_ids = [overdue.pk, today.pk, this_week.pk, later.pk, undated.pk, done_overdue.pk]
    assert ids["default"] == all_ids[::-1]  # newest first
    assert ids["oldest first"] == all_ids
    assert ids["title"] == [
        today.pk,
        done_overdue.pk,
        later.pk,
        undated.pk,
        overdue.pk,
        this_week.pk,
    ]
    assert ids["priority"][0] == undated.pk  # urgent first
    assert ids["priority asc"][0] == later.pk  # low first
    assert ids["due"][:2] == [overdue.pk, done_overdue.pk]
    assert ids["due"][-1] == undated.pk  # no due date last
    assert ids["status"][-1] == done_overdue.pk  # pending first
    assert ids["status desc"][0] == done_overdue.pk

    assert ids["page"] == all_ids[2:4]
    assert (pages["page"]["total_count"], pages["page"]["limit"], pages["page"]["offset"]) == (
        6,
        2,
        2,
    )
    assert (ids["last page"], pages["last page"]["total_count"]) == ([all_ids[0]], 6)
    assert (ids["beyond"], pages["beyond"]["total_count"]) == ([], 6)
    assert pages["default"]["total_count"] == 6


# --- who may do what ----------------------------------------------------------------------


def test_mismatched_user_id_is_refused_and_changes_nothing(agent, user_id):
    task = services.task_create(user_id=user_id, title="Mine")
    for name, arguments in [
        ("add_task", {"title": "Sneaky"}),
        ("list_tasks", {}),
        ("update_task", {"task_id": task.pk, "title": "Changed"}),
        ("complete_task", {"task_id": task.pk}),
        ("delete_task", {"task_id": task.pk}),
    ]:
        text, error = agent.refused(name, user_id="somebody-else", **arguments)
        assert error["code"] == "forbidden" and error["field"] == "user_id"
        assert "user_id" in text
    row = Task.objects.get(pk=task.pk)
    assert (row.title, row.completed, row.version) == ("Mine", False, 1)
    assert Task.objects.filter(user_id="somebody-else").count() == 0
    assert [t.pk for t in _rows(user_id)] == [task.pk]
    assert event_types(user_id) == ["task.created"]
    assert outbox("somebody-else") == []


def test_another_users_task_is_not_found(agent, other_agent, other_user_id):
    theirs = services.task_create(user_id=other_user_id, title="Their secret", priority="high")
    for name, arguments in [
        ("update_task", {"task_id": theirs.pk, "title": "Mine now"}),
        ("complete_task", {"task_id": theirs.pk}),
        ("delete_task", {"task_id": theirs.pk}),
        ("delete_task", {"task_id": 2**62}),
    ]:
        text, error = agent.refused(name, **arguments)
        assert error["code"] == "not_found" and error["field"] == "task_id"
        assert text == f"task_id: Task {arguments['task_id']} not found. (code: not_found)"
        assert "secret" not in text
    assert agent.ok("list_tasks", search="secret") == {
        "next_cursor": None,
        "tasks": [],
        "total_count": 0,
        "limit": 50,
        "offset": 0,
    }
    row = Task.objects.get(pk=theirs.pk)
    assert (row.title, row.completed, row.version) == ("Their secret", False, 1)
    assert other_agent.ok("list_tasks")["total_count"] == 1
    assert event_types(other_user_id) == ["task.created"]
    assert outbox(agent.user) == []


def _post(live, headers: dict, body: dict | None = None) -> httpx.Response:
    body = body or {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    return httpx.post(
        live.url,
        json=body,
        headers={"Accept": "application/json, text/event-stream", **headers},
        timeout=10,
    )


def test_no_token_is_401_with_the_challenge_mcp_asks_for(live):
    response = _post(live, {})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    metadata_url = f"{live.base}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    assert "error=" not in challenge  # no credentials at all: no error code (RFC 6750)

    document = httpx.get(metadata_url, timeout=10)
    assert document.status_code == 200
    assert document.json()["resource"] == live.url
    assert document.json()["bearer_methods_supported"] == ["header"]
    root = httpx.get(f"{live.base}/.well-known/oauth-protected-resource", timeout=10)
    assert root.json()["resource"] == live.base

    basic = _post(live, {"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401


def test_wrong_and_expired_tokens_are_401(live, user_id):
    forged = jwt.encode(
        {"sub": user_id, "exp": int(time.time()) + 600}, "not-the-secret-" * 3, algorithm="HS256"
    )
    expired = issue_token(user_id, extra={"exp": int(time.time()) - 3600})
    unsigned = jwt.encode({"sub": user_id, "exp": int(time.time()) + 600}, None, algorithm="none")
    for token, description in [
        (forged, "Invalid token"),
        (expired, "Token has expired."),
        (unsigned, "Token algorithm is not accepted."),
        ("garbage", "Malformed token."),
    ]:
        response = _post(live, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        challenge = response.headers["WWW-Authenticate"]
        assert 'error="invalid_token"' in challenge
        assert "resource_metadata=" in challenge
        assert response.json()["error_description"].startswith(description)
    assert _post(live, {"Authorization": f"Bearer {issue_token(user_id)}"}).status_code == 200


def test_official_client_with_a_bad_token_gets_nothing(live, user_id):
    expired = issue_token(user_id, extra={"exp": int(time.time()) - 3600})
    agent = Agent(live.url, user_id, token=expired)
    with pytest.raises(BaseExceptionGroup) as info:
        agent.call("add_task", title="Never stored")
    assert info.group_contains(MCPError, depth=None)  # the client's error for an HTTP 401
    assert _rows(user_id) == []


def test_get_is_405_there_is_no_stream_to_open(live, user_id):
    response = httpx.get(
        live.url,
        headers={"Authorization": f"Bearer {issue_token(user_id)}", "Accept": "text/event-stream"},
        timeout=5,
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_host_and_origin_not_allowed_are_refused(live, user_id):
    token = {"Authorization": f"Bearer {issue_token(user_id)}"}
    refused = _post(live, {**token, "Host": "attacker.example"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "disallowed_host"
    # in ALLOWED_HOSTS (the test settings add it) but not in MCP_ALLOWED_HOSTS: the SDK's check
    assert _post(live, {**token, "Host": "testserver"}).status_code == 421
    assert _post(live, {**token, "Origin": "http://attacker.example"}).status_code == 403
    assert _post(live, {**token, "Host": f"localhost:{live.port}"}).status_code == 200


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field", "needle"),
    [
        ({"title": ""}, "title", "at least 1 character"),
        ({"title": "   "}, "title", "blank"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"title": "t", "tags": [f"t{i}" for i in range(21)]}, "tags", "at most 20"),
        ({"title": "t", "tags": ["x" * 51]}, "tags[0]", "at most 50"),
        ({"title": "t", "priority": "critical"}, "priority", "'low', 'medium', 'high' or 'urgent'"),
        ({"title": "t", "due_date": "next tuesday-ish"}, "due_date", "ISO 8601"),
        ({"title": "t", "due_date": "2031-13-45"}, "due_date", "ISO 8601"),
        ({"title": "t", "reminder_time": "1h"}, "reminder_time", "needs a due date"),
        ({"title": "t", "recurrence_pattern": "daily"}, "due_date", "needs a due date"),
        ({"title": "t", "recurrence_pattern": "fortnightly-ish"}, "recurrence_pattern", ""),
        ({"title": "t", "timezone": "Mars/Olympus"}, "timezone", ""),
        ({"title": "t", "colour": "red"}, "colour", "Unknown argument"),
        ({"description": "no title"}, "title", "Field required"),
    ],
)
def test_bad_inputs_are_tool_errors_naming_the_field(agent, user_id, arguments, field, needle):
    text, error = agent.refused("add_task", **arguments)
    assert error["field"] == field
    assert text.startswith(f"{field}: ")
    assert needle in text
    assert "Traceback" not in text
    assert _rows(user_id) == []
    assert outbox(user_id) == []


def test_list_tasks_says_which_words_a_search_used_instead(agent, user_id):
    # given a task the agent misspells
    services.task_create(user_id=user_id, title="Call the dentist")

    # when it searches with the typo, and with the word
    typo = agent.call("list_tasks", search="dentsit")
    exact = agent.ok("list_tasks", search="dentist")

    # then the typo finds the task and says what was searched for, as REST does
    assert not typo.is_error, typo.content[0].text
    assert typo.structured_content["corrected"] == {"dentsit": "dentist"}
    assert [t["title"] for t in typo.structured_content["tasks"]] == ["Call the dentist"]
    assert "'dentist' for 'dentsit'" in typo.content[0].text
    assert "corrected" not in exact


def test_bad_list_and_update_inputs(agent, user_id):
    task = services.task_create(user_id=user_id, title="Keep")
    bad_lists = [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done-ish"}, "status"),
        ({"due_date_filter": "tomorrow"}, "due_date_filter"),
        ({"sort_by": "colour"}, "sort_by"),
        ({"sort_order": "sideways"}, "sort_order"),
        ({"priority": "critical"}, "priority"),
        ({"search": "x" * 201}, "search"),
    ]
    bad_writes = [
        ("list_tasks", {"timezone": "Mars/Olympus"}, "invalid_timezone", "timezone"),
        ("update_task", {"task_id": task.pk}, "nothing_to_update", None),
        ("update_task", {"task_id": task.pk, "title": ""}, "invalid", "title"),
        ("update_task", {"task_id": task.pk, "priority": "meh"}, "invalid", "priority"),
        (
            "update_task",
            {"task_id": task.pk, "due_date": "someday"},
            "invalid_datetime",
            "due_date",
        ),
        ("update_task", {"task_id": 0, "title": "x"}, "invalid", "task_id"),
        ("complete_task", {"task_id": "seven"}, "invalid", "task_id"),
        ("delete_task", {}, "invalid", "task_id"),
    ]
    results = agent.calls(
        *(("list_tasks", arguments) for arguments, _ in bad_lists),
        *((name, arguments) for name, arguments, _, _ in bad_writes),
    )
    expected = [("invalid", field) for _, field in bad_lists] + [
        (code, field) for _, _, code, field in bad_writes
    ]
    for result, (code, field) in zip(results, expected, strict=True):
        assert result.is_error and result.structured_content is None
        error = result.meta["error"]
        assert (error["code"], error.get("field")) == (code, field), error
    row = Task.objects.get(pk=task.pk)
    assert (row.title, row.version, row.completed) == ("Keep", 1, False)


def test_unexpected_failure_is_a_generic_tool_error(agent, user_id, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(services, "task_create", broken)
    result = agent.call("add_task", title="Boom")
    assert result.is_error
    assert result.content[0].text == "Error executing tool add_task"
    assert _rows(user_id) == []


# --- rate limits --------------------------------------------------------------------------


def test_rest_and_mcp_share_one_write_budget(agent, user_id, monkeypatch):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "task_write": "3/min"}
    monkeypatch.setitem(settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES", rates)
    rest = client_for(user_id)
    assert rest.post("/api/tasks/", {"title": "one"}, format="json").status_code == 201
    assert agent.ok("add_task", title="two")["status"] == "created"
    assert rest.post("/api/tasks/", {"title": "three"}, format="json").status_code == 201

    text, error = agent.refused("add_task", title="four")
    assert error["code"] == "rate_limited"
    assert text.startswith("rate limited, retry in ") and text.endswith(" s (code: rate_limited)")
    assert 1 <= error["retry_after"] <= 60
    assert rest.post("/api/tasks/", {"title": "five"}, format="json").status_code == 429
    assert sorted(t.title for t in _rows(user_id)) == ["one", "three", "two"]
    # Lists have their own budget.
    assert agent.ok("list_tasks")["total_count"] == 3


def test_list_budget_is_the_rest_list_budget(agent, user_id, monkeypatch):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "task_list": "2/min"}
    monkeypatch.setitem(settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES", rates)
    assert client_for(user_id).get("/api/tasks/").status_code == 200
    agent.ok("list_tasks")
    _, error = agent.refused("list_tasks")
    assert error["code"] == "rate_limited"
    assert agent.ok("add_task", title="writes are another budget")["status"] == "created"


# --- serving ------------------------------------------------------------------------------


def test_concurrent_calls_each_write_once(live, user_id):
    async def burst():
        token = issue_token(user_id)
        return await asyncio.gather(
            *(
                _session_calls(live.url, token, [("add_task", {"title": f"Parallel {i}"})])
                for i in range(8)
            )
        )

    results = [calls[0] for calls in asyncio.run(burst())]
    assert not any(result.is_error for result in results)
    ids = sorted(result.structured_content["task_id"] for result in results)
    assert [t.pk for t in _rows(user_id)] == ids
    assert event_types(user_id) == ["task.created"] * 8


def _other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_stopping_the_server_closes_its_database_connections(user_id):
    before = _other_backends()
    with LiveServer() as server:
        agent = Agent(f"{server.url}/mcp", user_id)
        agent.calls(*(("add_task", {"title": f"t{i}"}) for i in range(3)), ("list_tasks", {}))
        assert _other_backends() > before  # the tools' threads keep their connections
    deadline = time.monotonic() + 5
    while _other_backends() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _other_backends() == before


def test_without_the_asgi_lifespan_the_endpoint_says_how_to_serve_it(user_id):
    """A server that skips the lifespan (daphne) gets a clear 503, not a crash."""
    from todo_project.asgi import application

    async def post():
        transport = httpx.ASGITransport(app=application)  # runs no lifespan
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            return await c.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={
                    "Authorization": f"Bearer {issue_token(user_id)}",
                    "Accept": "application/json, text/event-stream",
                },
            )

    response = asyncio.run(post())
    assert response.status_code == 503
    assert "uvicorn" in response.json()["error_description"]


def test_a_bare_date_is_accepted_as_rest_accepts_it(agent, user_id):
    created = agent.ok("add_task", title="Dated", due_date="2031-06-01")
    assert clean_due("2031-06-01", tz_name="UTC") == datetime(2031, 6, 1, 23, 59, 59, tzinfo=UTC)
    assert created["due_date"] == "2031-06-01T23:59:59Z"  # the end of that day, as REST reads it


# --- runserver ----------------------------------------------------------------------------


def test_runserver_wsgi_serves_the_same_endpoint(live_server, user_id):
    """Django's own threaded WSGI server (what ``manage.py runserver`` runs) answers /mcp
    through tasks.mcp.views, one stateless request at a time."""
    url = f"{live_server.url}/mcp"
    agent = Agent(url, user_id)
    listing, created, listed = agent.calls(
        ("__list_tools__", {}),
        ("add_task", {"title": "Served by runserver", "tags": ["wsgi"]}),
        ("list_tasks", {"tags": ["wsgi"]}),
    )
    assert {tool.name for tool in listing.tools} == TOOLS
    assert created.structured_content["status"] == "created"
    task_id = created.structured_content["task_id"]
    assert [t["task_id"] for t in listed.structured_content["tasks"]] == [task_id]
    assert Task.objects.get(pk=task_id).user_id == user_id
    assert event_types(user_id) == ["task.created"]

    _, error = agent.refused("add_task", title="x", user_id="somebody-else")
    assert error["code"] == "forbidden"
    unauthenticated = httpx.post(url, json={}, timeout=10)
    assert unauthenticated.status_code == 401
    assert "resource_metadata=" in unauthenticated.headers["WWW-Authenticate"]
    metadata = httpx.get(f"{live_server.url}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert metadata.json()["resource"] == url
