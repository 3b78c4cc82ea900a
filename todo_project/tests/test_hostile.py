"""Hostile input across surfaces: unstorable text, another user's objects on every route and
tool, oversized bodies and headers, and SQL and tsquery syntax in search. Each surface has its
own module too: the REST schema fuzzer ``tasks/tests/test_schema_fuzz.py``, MCP
``tasks/tests/test_hostile_mcp.py``,
WebSocket ``realtime/tests/test_hostile_socket.py``, the Dapr job trigger
``reminders/tests/test_hostile_job.py``.

Already covered elsewhere and not repeated here: JWT failures on REST (``tasks/tests/test_api.py``,
``todo_project/tests/test_settings_and_auth.py``), cross-user frames and resume on the socket
(``realtime/tests/test_consumer.py``).

A uvicorn server runs the project's ASGI app in a thread of the test process (so it uses the test
database); its lifespan starts only the MCP session manager, not the embedded workers.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.auth import issue_token
from tasks import services
from todo_project.testing import McpClient, assert_clean_tool_result

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "60"))
OWNER = "hostile-owner"


# --- tokens --------------------------------------------------------------------------------


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user)}"}


# --- the REST operations (tasks/tests/test_schema_fuzz.py fuzzes each) ----------------------


def _operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


OPERATIONS = _operations()


# --- MCP clients (the official client, see todo_project.testing.McpClient) -----------------


@pytest.fixture
def mcp(server):
    def open_client(user: str, token: str | None = None) -> McpClient:
        return McpClient(f"{server.url}/mcp", token or issue_token(user))

    return open_client


# --- strings PostgreSQL cannot store ---------------------------------------------------------


def _raw_json(value) -> bytes:
    """JSON as Python writes it by default: a lone surrogate goes out escaped (``\\ud800``),
    which is valid JSON that decodes to a string UTF-8 cannot encode."""
    return json.dumps(value).encode()


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\x00"])
def test_unstorable_text_in_a_rest_body_is_a_400_naming_the_field(server, text):
    headers = {**bearer(OWNER), "Content-Type": "application/json"}
    for body, field in [
        ({"title": text}, "title"),
        ({"title": "ok", "description": text}, "description"),
        ({"title": "ok", "tags": ["fine", text]}, "tags"),
    ]:
        response = httpx.post(
            f"{server.url}/api/tasks/", content=_raw_json(body), headers=headers, timeout=30
        )
        assert response.status_code == 400, (body, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert error["fields"][0]["field"].startswith(field), error
    response = httpx.get(f"{server.url}/api/tasks/", params={"q": "x"}, headers=bearer(OWNER))
    assert response.status_code == 200


@pytest.mark.parametrize("text", ["\ud800", "\x00"])
def test_unstorable_text_in_a_tool_call_is_a_tool_error_naming_the_field(mcp, server, text):
    with mcp(OWNER) as client:
        client.call("list_tasks", {})  # the session is up
    token = issue_token(OWNER)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    for name, arguments in [
        ("add_task", {"title": text}),
        ("add_task", {"title": "ok", "tags": [text]}),
        ("list_tasks", {"search": text}),
        ("list_tasks", {"tags": ["ok", text]}),
    ]:
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        response = httpx.post(
            f"{server.url}/mcp", content=_raw_json(message), headers=headers, timeout=30
        )
        if response.status_code == 400:
            # the SDK refuses the message itself: a JSON-RPC parse error, nothing ran
            assert response.json()["error"]["code"] == -32700, response.text[:300]
            continue
        assert response.status_code == 200, response.text[:300]
        result = response.json()["result"]
        assert result["isError"] is True, result
        assert not result["content"][0]["text"].startswith("Error executing tool"), result
        assert result["_meta"]["error"]["code"], result
        assert result["_meta"]["error"]["field"], result


# --- user B against user A's objects, on every route and tool -------------------------------


@pytest.fixture
def owned_by_a(other_user_id):
    """A task of user A, with history and a notification; B is ``other_user_id``'s opposite."""
    from datetime import timedelta

    from django.utils import timezone

    from reminders import services as reminders

    user_a = f"a-{other_user_id}"
    task = services.task_create(
        user_id=user_a,
        title="secret plans",
        due_date=timezone.now() + timedelta(days=1),
        reminder_time="1h",
    )
    (notification,) = reminders.notifications_create_for_triggers(
        [
            reminders.Trigger(
                user_id=user_a,
                task_id=task.pk,
                remind_at=task.remind_at,
                fired_at=timezone.now(),
                title=task.title,
                due_at=task.due_at,
            )
        ]
    )
    return {"user": user_a, "task_id": task.pk, "notification_id": notification.pk}


def test_user_b_gets_404_for_user_a_objects_on_every_rest_route(owned_by_a, other_api):
    b = other_api
    bodies = {"PUT": {"title": "mine now"}, "PATCH": {"title": "mine now"}, "POST": {}}
    tried = 0
    for method, path in OPERATIONS:
        if "{" not in path:
            continue
        url = path.format(**{k: owned_by_a[k] for k in ("task_id", "notification_id")})
        response = b.generic(
            method, url, json.dumps(bodies.get(method, {})), content_type="application/json"
        )
        assert response.status_code == 404, (method, url, response.status_code)
        assert "secret" not in response.content.decode()
        tried += 1
    assert tried >= 9
    # and nothing of A's shows in B's lists or search
    assert b.get("/api/tasks/", {"q": "secret plans"}).json()["count"] == 0
    assert b.get("/api/tasks/").json()["count"] == 0
    assert "secret" not in b.get("/api/notifications/").content.decode()
    # A's objects are as they were
    from reminders.models import Notification
    from tasks.models import Task

    task = Task.objects.get(pk=owned_by_a["task_id"])
    assert (task.title, task.version, task.completed) == ("secret plans", 1, False)
    note = Notification.objects.get(pk=owned_by_a["notification_id"])
    assert note.read_at is None and note.dismissed_at is None


# What a tool needs besides the task id for its call to be valid, so that only the owner
# check can refuse it.
VALID_EXTRA_ARGUMENTS = {
    "update_task": {"title": "mine now"},
    "reschedule_occurrence": {"due_date": "2031-01-06T09:00:00Z"},
}


def test_user_b_gets_not_found_for_user_a_task_from_every_mcp_tool(mcp, owned_by_a, other_user_id):
    from tasks.mcp.server import TOOLS

    with mcp(other_user_id) as b:
        for name, tool in TOOLS.items():
            if "task_id" in tool.parameters["properties"]:
                arguments = {
                    "task_id": owned_by_a["task_id"],
                    **VALID_EXTRA_ARGUMENTS.get(name, {}),
                }
                result = b.call(name, arguments)
                assert result.is_error, name
                assert result.meta["error"]["code"] == "not_found", name
                assert "secret" not in result.content[0].text
            # acting as A by naming A is refused outright
            arguments = {"user_id": owned_by_a["user"]}
            if name in ("add_task", "update_task"):
                arguments["title"] = "planted"
            if "task_id" in tool.parameters["properties"]:
                arguments["task_id"] = owned_by_a["task_id"]
            result = b.call(name, arguments)
            assert result.is_error and result.meta["error"]["code"] == "forbidden"
        listing = b.call("list_tasks", {"search": "secret plans"})
        assert listing.structured_content["total_count"] == 0
    from tasks.models import Task

    assert Task.objects.get(pk=owned_by_a["task_id"]).version == 1
    assert not Task.objects.filter(title="planted").exists()


# --- oversized bodies and headers -----------------------------------------------------------


def test_oversized_bodies_are_refused_with_a_4xx(server, settings):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    big = {"title": "big", "description": "x" * (limit + 1024)}
    headers = {**bearer(OWNER), "Content-Type": "application/json"}
    rest = httpx.post(
        f"{server.url}/api/tasks/", content=_raw_json(big), headers=headers, timeout=30
    )
    assert rest.status_code == 413, rest.text[:300]
    assert rest.json()["error"]["code"] == "too_large"
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "add_task", "arguments": big}}  # fmt: skip
    tool = httpx.post(
        f"{server.url}/mcp",
        content=_raw_json(message),
        headers={**headers, "Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert tool.status_code == 413, tool.text[:300]
    from tasks.models import Task

    assert not Task.objects.filter(title="big").exists()


@pytest.mark.parametrize("path", ["/api/tasks/", "/mcp", "/healthz", "/ws/tasks/"])
@pytest.mark.parametrize("where", ["header", "token"])
def test_oversized_headers_are_refused_with_431(server, settings, path, where):
    """Regression: uvicorn's httptools parser buffered request heads of any size (8 MiB were
    accepted); beyond MAX_REQUEST_HEADER_BYTES the server now answers 431 and closes."""
    huge = "h" * (settings.MAX_REQUEST_HEADER_BYTES + 1024)
    headers = (
        {"Authorization": f"Bearer {huge}"}
        if where == "token"
        else {**bearer(OWNER), "X-Padding": huge}
    )
    if path.startswith("/ws/"):
        headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    response = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
    assert response.status_code == 431, (path, where, response.status_code)


def test_headers_up_to_the_limit_are_served(server, settings):
    padding = "p" * (settings.MAX_REQUEST_HEADER_BYTES // 2)
    response = httpx.get(
        f"{server.url}/api/tasks/", headers={**bearer(OWNER), "X-Padding": padding}, timeout=30
    )
    assert response.status_code == 200
    # a body far larger than the head limit (but under MAX_REQUEST_BYTES) is not a head: it
    # reaches the serializer, which refuses the description for its own length
    body = {"title": "long", "description": "d" * (settings.MAX_REQUEST_HEADER_BYTES + 10)}
    response = httpx.post(f"{server.url}/api/tasks/", json=body, headers=bearer(OWNER), timeout=30)
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error"]["fields"][0]["field"] == "description", response.text[:200]


# --- SQL and tsquery syntax in search -------------------------------------------------------

SEARCH_ATTACKS = [
    "'; DROP TABLE tasks_task; --",
    "' OR '1'='1",
    "\\'; SELECT pg_sleep(5); --",
    "1); DELETE FROM tasks_task WHERE (1=1",
    "milk & !eggs | (bread <-> butter)",
    "!!!",
    "&&&|||",
    "milk:*",
    ":* <-> :*",
    "((milk",
    'milk" OR "1',
    "<2>",
    "-",
    "*",
    "%_%",
    "\\",
    "a" * 512,
]


@pytest.fixture
def two_users_tasks(user_id, other_user_id):
    mine = [
        services.task_create(user_id=user_id, title=t).pk for t in ("Buy milk", "Bread and butter")
    ]
    services.task_create(user_id=other_user_id, title="Buy milk too")
    return mine


@given(
    query=st.sampled_from(SEARCH_ATTACKS)
    | st.text(alphabet="&|!():*<->'\"\\%_ -;abc12", max_size=40)
)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def _rest_search_property(api, mine, query):
    response = api.get("/api/tasks/", {"q": query})
    assert response.status_code in (200, 400), (query, response.status_code)
    if response.status_code == 200:
        assert {task["id"] for task in response.json()["results"]} <= set(mine), query


def test_sql_and_tsquery_syntax_in_rest_search_is_just_text(api, two_users_tasks):
    from tasks.models import Task

    _rest_search_property(api, two_users_tasks)
    assert Task.objects.count() == 3
    found = api.get("/api/tasks/", {"q": "milk & !eggs"}).json()["results"]
    assert [task["title"] for task in found] in ([], ["Buy milk"])


def test_sql_and_tsquery_syntax_in_mcp_search_is_just_text(mcp, two_users_tasks, user_id):
    from tasks.models import Task

    with mcp(user_id) as client:
        for query in SEARCH_ATTACKS:
            result = client.call("list_tasks", {"search": query})
            assert_clean_tool_result(result)
            if not result.is_error:
                ids = {task["task_id"] for task in result.structured_content["tasks"]}
                assert ids <= set(two_users_tasks), query
        milk = client.call("list_tasks", {"search": "milk"}).structured_content
        assert [task["title"] for task in milk["tasks"]] == ["Buy milk"]
    assert Task.objects.count() == 3
