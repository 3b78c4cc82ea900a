"""Helpers for the realtime tests: sockets through the project's ASGI app, and a real server."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.layers import channel_layers
from django.db import connections

from core.auth import issue_token
from todo_project.testing import LiveServer, end_other_database_connections


class WebsocketCommunicator(ApplicationCommunicator):
    """Drives one WebSocket connection through an ASGI app, the way a server would.

    (``channels.testing`` would do, but importing it requires daphne.)
    """

    def __init__(self, application, path, headers=None, subprotocols=None):
        parts = urlsplit(path)
        super().__init__(
            application,
            {
                "type": "websocket",
                "asgi": {"version": "3.0"},
                "path": parts.path,
                "raw_path": parts.path.encode(),
                "query_string": parts.query.encode(),
                "headers": list(headers or []),
                "subprotocols": list(subprotocols or []),
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            },
        )
        self.response_headers = None

    async def connect(self, timeout: float = 2):
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        self.response_headers = response.get("headers", [])
        return True, response.get("subprotocol")

    async def send_to(self, text_data=None, bytes_data=None):
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data):
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 2):
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", f"expected a frame, got {response}"
        return response.get("text") if response.get("text") is not None else response["bytes"]

    async def receive_json_from(self, timeout: float = 2):
        return json.loads(await self.receive_from(timeout))

    async def disconnect(self, code: int = 1000, timeout: float = 2):
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def asgi_app():
    from todo_project.asgi import application

    return application


async def open_socket(
    user_id: str | None = None,
    *,
    token: str | None = None,
    via: str = "protocol",
    path: str = "/ws/tasks/",
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WebsocketCommunicator:
    """A connected communicator (not yet read from)."""
    if token is None and user_id is not None:
        token = issue_token(user_id)
    subprotocols = None
    params = [query] if query else []
    if token is not None and via == "protocol":
        subprotocols = ["bearer", token]
    elif token is not None:
        params.append(f"token={token}")
    url = path + ("?" + "&".join(params) if params else "")
    communicator = WebsocketCommunicator(
        asgi_app(), url, headers=headers or [], subprotocols=subprotocols
    )
    connected, subprotocol = await communicator.connect()
    assert connected, f"handshake refused outright ({subprotocol})"
    return communicator


async def connect_user(user_id: str, **kwargs) -> tuple[WebsocketCommunicator, dict]:
    """A socket of ``user_id`` that got its hello frame."""
    communicator = await open_socket(user_id, **kwargs)
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello", hello
    return communicator, hello


async def expect_close(communicator: WebsocketCommunicator, code: int, timeout: float = 3) -> dict:
    message = await communicator.receive_output(timeout)
    assert message["type"] == "websocket.close", f"expected a close, got {message}"
    assert message.get("code") == code, message
    return message


async def receive_frames(communicator: WebsocketCommunicator, count: int, timeout: float = 5):
    return [await communicator.receive_json_from(timeout=timeout) for _ in range(count)]


def _closing(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    finally:
        connections.close_all()


async def in_thread(function, *args, **kwargs):
    """Run blocking (database) code in a worker thread that keeps no connection afterwards."""
    return await asyncio.to_thread(_closing, function, *args, **kwargs)


async def drain() -> None:
    """Run every consumer of the events framework over everything committed so far, off the
    loop: publish the committed outbox rows to the embedded log, then let each consumer's runner
    read the log to its end. The realtime handler only hands its messages to the sockets' loop;
    read them with a timeout."""
    await in_thread(_drain_sync)


def _drain_sync():
    from events.brokers.embedded import EmbeddedBroker
    from events.consumers import all_consumers
    from events.relay import relay_once
    from events.runners import EmbeddedConsumerRunner

    broker = EmbeddedBroker()
    while relay_once(broker).published:
        pass
    for consumer in all_consumers():
        runner = EmbeddedConsumerRunner(consumer)
        while runner.poll():
            pass


@pytest.fixture(autouse=True)
def _no_connections_left_behind(request, django_db_blocker):
    """Sockets read the database from worker threads that keep their connections; end them
    after each test, or the test database can be neither flushed nor dropped."""
    yield
    if request.node.get_closest_marker("django_db") is not None:
        with django_db_blocker.unblock():
            end_other_database_connections()


@pytest.fixture(autouse=True)
def fresh_channel_layers():
    """Each test has its own event loop; start it with empty in-memory queues and groups."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture
def live_server_asgi(transactional_db, caplog):
    """uvicorn serving the project's whole ASGI app (lifespan included, so the embedded
    workers run) on a free loopback port, against the test database."""
    caplog.set_level("INFO")
    server = LiveServer(asgi_app(), log_level="info").start()
    try:
        yield server
    finally:
        if server.thread.is_alive():
            server.stop()
