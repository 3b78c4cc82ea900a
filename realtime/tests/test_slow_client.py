"""A client that stops reading cannot hold up anyone: its frames queue up to a bound, then its
socket is closed with 4409 and it leaves the group; other sockets get every frame meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from core.auth import issue_token
from realtime.frames import CloseCode
from realtime.tests.conftest import asgi_app, connect_user, drain, in_thread, receive_frames
from tasks import services

pytestmark = pytest.mark.django_db(transaction=True)


async def create_task(**kwargs):
    return await in_thread(services.task_create, **kwargs)


class StuckTransport:
    """The server side of a socket whose peer stopped reading: once the kernel buffers are
    full, every send waits, the way uvicorn's ``send`` waits for the transport to drain."""

    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.drained = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] in {"websocket.send", "websocket.close"}:
            await self.drained.wait()

    def frames(self) -> list[dict]:
        return [m for m in self.sent if m["type"] == "websocket.send"]

    def close_codes(self) -> list[int]:
        return [m.get("code") for m in self.sent if m["type"] == "websocket.close"]


async def test_a_client_that_does_not_read_is_closed_4409_while_others_get_everything(
    user_id, settings
):
    settings.REALTIME_SEND_QUEUE = 4
    stuck = StuckTransport()
    scope = {
        "type": "websocket",
        "path": "/ws/tasks/",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "subprotocols": ["bearer", issue_token(user_id)],
    }
    app_task = asyncio.create_task(asgi_app()(scope, stuck.inbox.get, stuck.send))
    await stuck.inbox.put({"type": "websocket.connect"})
    reader, _ = await connect_user(user_id)
    for _ in range(50):  # the stuck socket is in the group once its hello is being sent
        if stuck.frames():
            break
        await asyncio.sleep(0.02)
    assert len(stuck.frames()) == 1  # the hello, stuck in the transport

    for n in range(10):
        await create_task(user_id=user_id, title=f"Task {n}")
    await drain()

    # The reading client got all ten, in order, while the other one was stuck.
    frames = await receive_frames(reader, 10)
    assert [f["sequence"] for f in frames] == list(range(1, 11))
    # The stuck socket overflowed its bound: a close with 4409 is waiting in its transport.
    assert stuck.close_codes() == [CloseCode.TOO_SLOW]
    assert len(stuck.frames()) == 1

    # Once closed it has left the group: later events do not queue up for it any more.
    stuck.drained.set()
    await create_task(user_id=user_id, title="After")
    await drain()
    assert (await reader.receive_json_from(timeout=5))["sequence"] == 11
    assert len(stuck.frames()) == 1

    await stuck.inbox.put({"type": "websocket.disconnect", "code": CloseCode.TOO_SLOW})
    await asyncio.wait_for(app_task, 5)
    await reader.disconnect()
