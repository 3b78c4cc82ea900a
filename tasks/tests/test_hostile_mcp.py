"""Hostile input against ``/mcp`` and its metadata: rate limits on every kind of call, a forged
``Host``, forged, stale and malformed tokens, bodies nested too deep, and property-based fuzzing
of every tool's arguments. Every answer is the documented one (docs/mcp.md) and nothing is
written.

Already covered elsewhere and not repeated here: one write budget for REST and MCP
(``tasks/tests/test_mcp.py``), unstorable text, another user's tasks and search syntax on every
surface (``todo_project/tests/test_hostile.py``).

A uvicorn server runs the project's ASGI app in a thread of the test process (so it uses the test
database); its lifespan starts only the MCP session manager.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import httpx
import httpx2
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core.auth import issue_token
from events.models import OutboxEvent
from tasks import services
from tasks.models import Task
from todo_project.testing import (
    FORGERIES,
    McpClient,
    assert_clean_tool_result,
    forged_token,
    hostile_values,
    hs256_with_public_key,
    jwks_keys,
    signed_token,
    use_strict_claims,
)

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "60"))
ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "1"},
    },
}


@pytest.fixture
def mcp(server):
    def open_client(user: str, token: str | None = None) -> McpClient:
        return McpClient(f"{server.url}/mcp", token or issue_token(user))

    return open_client


def post(server, message, *, token: str | None = None, **headers) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = message if isinstance(message, bytes) else None
    return httpx.post(
        f"{server.url}/mcp",
        json=None if content is not None else message,
        content=content,
        headers={**ACCEPT, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def call_tool(name: str, arguments: dict, request_id: int = 1) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def nothing_written(user: str) -> bool:
    return (
        not Task.objects.filter(user_id=user).exists()
        and not OutboxEvent.objects.filter(user_id=user).exists()
    )


# --- rate limits --------------------------------------------------------------------------


def test_methods_other_than_tool_calls_draw_on_the_users_read_budget(server, rates, user_id):
    rates(task_read="3/min")
    token = issue_token(user_id)
    ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
    listing = {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}
    assert [post(server, m, token=token).status_code for m in (INITIALIZE, ping, listing)] == [
        200,
        200,
        200,
    ]

    limited = post(server, listing, token=token)

    assert limited.status_code == 429
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert limited.json() == {
        "jsonrpc": "2.0",
        "id": 8,
        "error": {
            "code": -32000,
            "message": f"rate limited, retry in {retry_after} s",
            "data": {"code": "rate_limited", "retry_after": retry_after},
        },
    }
    # tool calls spend the budget of what they do, not this one
    listed = post(server, call_tool("list_tasks", {}), token=token)
    assert listed.status_code == 200 and listed.json()["result"]["isError"] is False
    # and every user has a budget of their own
    assert post(server, listing, token=issue_token(user_id + "-b")).status_code == 200


def test_the_official_client_hands_the_limit_over_as_an_mcp_error_with_retry_after(
    server, rates, user_id
):
    rates(task_read="1/min")

    async def session() -> None:
        headers = {"Authorization": f"Bearer {issue_token(user_id)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write, *_),
            ClientSession(read, write) as client,
        ):
            await client.initialize()  # spends the budget (its notification is refused)
            await client.list_tools()

    with pytest.raises(BaseExceptionGroup) as raised:
        asyncio.run(session())
    error = raised.value.subgroup(MCPError).exceptions[0]
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert error.error.data["code"] == "rate_limited"
    assert error.error.data["retry_after"] >= 1
    assert "rate limited, retry in" in error.error.message


def test_a_tool_call_past_its_budget_is_an_error_result_with_retry_after(server, rates, user_id):
    rates(task_write="1/min")
    token = issue_token(user_id)
    first = post(server, call_tool("add_task", {"title": "one"}), token=token).json()["result"]
    assert first["isError"] is False

    limited = post(server, call_tool("add_task", {"title": "two"}, 2), token=token)

    assert limited.status_code == 200
    result = limited.json()["result"]
    assert result["isError"] is True
    assert "structuredContent" not in result
    error = result["_meta"]["error"]
    assert error["code"] == "rate_limited"
    assert 1 <= error["retry_after"] <= 60
    assert result["content"][0]["text"] == (
        f"rate limited, retry in {error['retry_after']} s (code: rate_limited)"
    )
    assert list(Task.objects.filter(user_id=user_id).values_list("title", flat=True)) == ["one"]
    assert OutboxEvent.objects.filter(user_id=user_id).count() == 1


def test_requests_without_a_usable_token_are_limited_per_address(server, rates):
    rates(anonymous="3/min")
    metadata = f"{server.url}/.well-known/oauth-protected-resource/mcp"
    answers = [
        post(server, INITIALIZE).status_code,
        post(server, INITIALIZE, token="not-a-jwt").status_code,
        httpx.get(metadata, timeout=30).status_code,
    ]
    assert answers == [401, 401, 200]

    for limited in (post(server, INITIALIZE), httpx.get(metadata, timeout=30)):
        assert limited.status_code == 429
        retry_after = int(limited.headers["Retry-After"])
        assert limited.json() == {
            "error": "rate_limited",
            "error_description": "Too many requests without a usable token; retry in "
            f"{retry_after} s.",
            "retry_after": retry_after,
        }
        assert "www-authenticate" not in limited.headers
    # a caller with a token is not held back by the address's budget
    assert post(server, INITIALIZE, token=issue_token("has-a-token")).status_code == 200


# --- Host --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_the_metadata_refuses_a_host_outside_allowed_hosts_and_never_echoes_it(server, path):
    refused = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example"}, timeout=30)

    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "code": "disallowed_host",
            "message": "This server does not answer for that Host; see ALLOWED_HOSTS.",
        }
    }
    assert "evil" not in refused.text
    served = httpx.get(f"{server.url}{path}", timeout=30).json()
    assert served["resource"].startswith(f"http://127.0.0.1:{server.port}")


def test_the_401_challenge_refuses_a_host_outside_allowed_hosts_and_never_echoes_it(server):
    refused = post(server, INITIALIZE, Host="evil.example:8000")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "disallowed_host"
    assert "evil" not in refused.text
    assert "www-authenticate" not in refused.headers
    challenge = post(server, INITIALIZE).headers["www-authenticate"]
    assert f'resource_metadata="http://127.0.0.1:{server.port}/' in challenge


def test_a_forged_host_with_a_good_token_reaches_no_tool(server, user_id):
    refused = post(
        server, call_tool("add_task", {"title": "x"}), token=issue_token(user_id), Host="evil"
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "disallowed_host"
    assert nothing_written(user_id)


# --- tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject", ["user\x00one", "user\x07", "user\x1b[31m", "user\x7f", "user\x85", "user\ud800"]
)
def test_a_signed_token_whose_subject_holds_control_characters_gets_the_bearer_challenge(
    server, subject
):
    token = signed_token({"sub": subject, "exp": int(time.time()) + 600})

    refused = post(server, call_tool("add_task", {"title": "planted"}), token=token)

    assert refused.status_code == 401, refused.text[:300]
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert refused.json()["error"] == "invalid_token"
    assert not Task.objects.filter(title="planted").exists()
    assert not OutboxEvent.objects.exists()


def test_the_good_token_passes_with_issuer_and_audience_configured(settings, mcp, user_id):
    use_strict_claims(settings)
    with mcp(user_id) as client:
        assert not client.call("list_tasks", {}).is_error


@pytest.mark.parametrize("kind", FORGERIES)
def test_mcp_refuses_forged_and_stale_tokens_with_the_bearer_challenge(
    settings, server, user_id, kind
):
    use_strict_claims(settings)
    token = forged_token(kind, user_id)
    response = post(server, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token=token)
    assert response.status_code == 401, (kind, response.text[:200])
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_hs256_signed_with_the_public_key_is_refused(settings, server, user_id):
    import jwt

    with jwks_keys(settings) as key:
        claims = {"sub": user_id, "exp": int(time.time()) + 600}
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        confused = hs256_with_public_key(claims, key)
        tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        assert post(server, tools_list, token=good).status_code == 200
        assert post(server, tools_list, token=confused).status_code == 401


# --- bodies nested too deep ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_task",'
        b'"arguments":{"title":' + b"[" * 5000 + b"]" * 5000 + b"}}}",
    ],
    ids=["array", "object", "in-arguments"],
)
@pytest.mark.parametrize("protocol", [None, "2026-07-28"])  # the handshake era; the modern one
def test_a_json_rpc_body_nested_5000_deep_is_a_parse_error(server, user_id, caplog, body, protocol):
    headers = {"MCP-Protocol-Version": protocol} if protocol else {}
    caplog.set_level(logging.WARNING)

    response = post(server, body, token=issue_token(user_id), **headers)

    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == -32700  # JSON-RPC parse error
    assert "Traceback" not in response.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert nothing_written(user_id)


# --- hypothesis: any tool input -----------------------------------------------------------


def _tool_arguments(name: str):
    from tasks.mcp.server import TOOLS

    known = sorted(TOOLS[name].parameters["properties"])
    keys = st.sampled_from([*known, "unknown_argument"])
    return st.dictionaries(keys, hostile_values(), max_size=6)


@pytest.mark.parametrize(
    "tool", ["add_task", "list_tasks", "update_task", "complete_task", "delete_task"]
)
def test_any_tool_input_gets_a_clean_answer(mcp, tool):
    owner = f"hostile-owner-{tool}"
    existing = services.task_create(user_id=owner, title="target", due_date="2031-01-01T00:00Z").pk
    with mcp(owner) as client:

        @given(arguments=_tool_arguments(tool), aim=st.booleans())
        @examples(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(arguments, aim):
            from django.core.cache import cache

            cache.clear()
            if aim and "task_id" in arguments:
                arguments["task_id"] = existing
            assert_clean_tool_result(client.call(tool, arguments))

        run()
