"""Slow clients against the real server (uvicorn with ``core.http_limits``): a request
head that does not arrive within ``REQUEST_HEADER_TIMEOUT_SECONDS`` is answered 408 and its
connection closed, on a new connection and on a kept-alive one; a slow head that arrives in
time is served, and an open WebSocket is not a slow head."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from core.auth import issue_token

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 0.5
SLACK = 2.0  # scheduling on a busy machine


@pytest.fixture(autouse=True)
def short_timeout(settings):
    settings.REQUEST_HEADER_TIMEOUT_SECONDS = TIMEOUT


def connect(server) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.settimeout(TIMEOUT + SLACK + 5)
    return conn


def read_until_closed(conn: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received, time.monotonic() - started


def read_response(conn: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += conn.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(4096)
    return head


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"],
    ids=["nothing", "request-line", "half-headers"],
)
def test_a_head_that_does_not_arrive_in_time_is_closed_with_408(server, sent):
    with connect(server) as conn:
        conn.sendall(sent)
        received, elapsed = read_until_closed(conn)

    assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + SLACK, elapsed
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"connection: close" in received.lower()


def test_many_half_sent_heads_are_all_closed(server):
    connections = [connect(server) for _ in range(50)]
    try:
        for conn in connections:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(TIMEOUT + SLACK)
        closed = 0
        for conn in connections:
            conn.settimeout(0.5)
            received, _ = read_until_closed(conn)
            closed += received.startswith(b"HTTP/1.1 408 ")
    finally:
        for conn in connections:
            conn.close()
    assert closed == 50


def test_the_next_head_on_a_kept_alive_connection_has_the_same_bound(server):
    with connect(server) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(conn).startswith(b"HTTP/1.1 200 ")
        # idle, then the first bytes of the next request: uvicorn's keep-alive timer stops there
        time.sleep(TIMEOUT * 1.5)
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")
        received, elapsed = read_until_closed(conn)

    assert elapsed < TIMEOUT + SLACK, elapsed
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_a_slow_head_that_arrives_in_time_is_served(server, settings):
    settings.REQUEST_HEADER_TIMEOUT_SECONDS = 2.0
    pieces = [b"GET /heal", b"thz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Accept: */*\r\n\r\n"]
    with connect(server) as conn:
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(0.3)
        head = read_response(conn)
    assert head.startswith(b"HTTP/1.1 200 "), head


def test_an_open_websocket_is_not_a_slow_head(server, user_id):
    from websockets.asyncio.client import connect as ws_connect

    async def session() -> list[dict]:
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/ws/tasks/",
            subprotocols=["bearer", issue_token(user_id)],
        ) as ws:
            hello = json.loads(await ws.recv())
            await asyncio.sleep(TIMEOUT * 3)
            await ws.send(json.dumps({"type": "ping"}))
            return [hello, json.loads(await ws.recv())]

    hello, pong = asyncio.run(session())
    assert hello["type"] == "hello"
    assert pong == {"type": "pong"}
