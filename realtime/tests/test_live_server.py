"""Against the real server (uvicorn, the whole ASGI app, its lifespan and the embedded workers):
a change made through REST reaches a real WebSocket client, delivered from a worker thread onto
the server's loop; and a token in the query string never reaches the log."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import websockets

from core.auth import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


async def _next_event(ws, timeout: float = 10) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == "event":
            return frame


def test_a_rest_change_reaches_a_real_socket_and_only_its_user(
    live_server_asgi, user_id, other_user_id
):
    token = issue_token(user_id)

    async def scenario():
        async with (
            websockets.connect(
                f"{live_server_asgi.ws_url}/ws/tasks/", subprotocols=["bearer", token]
            ) as mine,
            websockets.connect(
                f"{live_server_asgi.ws_url}/ws/tasks/",
                subprotocols=["bearer", issue_token(other_user_id)],
            ) as theirs,
        ):
            assert mine.subprotocol == "bearer"
            assert json.loads(await mine.recv())["type"] == "hello"
            assert json.loads(await theirs.recv())["type"] == "hello"
            async with httpx.AsyncClient(base_url=live_server_asgi.url) as http:
                response = await http.post(
                    "/api/tasks/",
                    json={"title": "Over the wire", "priority": "urgent", "tags": ["live"]},
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert response.status_code == 201, response.text
            frame = await _next_event(mine)
            assert frame["event_type"] == "task.created"
            assert frame["task"] == response.json()
            with pytest.raises(TimeoutError):
                await _next_event(theirs, timeout=0.5)

    asyncio.run(scenario())


def test_a_query_string_token_is_redacted_from_the_server_log(live_server_asgi, user_id, caplog):
    token = issue_token(user_id)

    async def scenario():
        async with websockets.connect(
            f"{live_server_asgi.ws_url}/ws/tasks/?token={token}&last_sequence=0"
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"

    asyncio.run(scenario())
    handshake_lines = [
        record.getMessage() for record in caplog.records if "WebSocket" in record.getMessage()
    ]
    assert any("token=[redacted]" in line for line in handshake_lines), handshake_lines
    assert all(token not in record.getMessage() for record in caplog.records)


def test_close_codes_reach_a_real_client(live_server_asgi, user_id):
    async def scenario():
        async with websockets.connect(
            f"{live_server_asgi.ws_url}/ws/tasks/", subprotocols=["bearer", "nope"]
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        return closed.value.rcvd

    received = asyncio.run(scenario())
    assert (received.code, received.reason) == (4401, "invalid_token")


@pytest.fixture(autouse=True)
def _uvicorn_logs_to_caplog():
    # uvicorn's own loggers do not propagate when it configured them; make sure they reach
    # the root logger (and caplog) in these tests.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).propagate = True
