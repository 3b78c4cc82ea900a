"""The ``subscriptions/listen`` bus (2026-07-28): the SDK's ``SubscriptionBus`` seam, backed by
the channel layer the WebSocket fan-out uses.

Each server process joins one channel-layer group while it runs and receives every update
message (``tasks.mcp.live``) on its own channel; it hands each only to the listen streams of
the message's user. A stream is registered under the user of the request that opened it, so a
stream never hears of another user's tasks, whatever URIs it asks for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager, suppress

from channels.layers import get_channel_layer
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from tasks.mcp import live
from tasks.mcp.auth import current_user

logger = logging.getLogger(__name__)

Listener = Callable[[ServerEvent], None]


class UserSubscriptionBus:
    """Listen streams of this process, per user; updates arrive over the channel layer."""

    def __init__(self) -> None:
        self._listeners: dict[str, dict[object, Listener]] = {}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a stream of the signed-in user (the listen request's)."""
        user_id = current_user().id
        token = object()
        self._listeners.setdefault(user_id, {})[token] = listener

        def unsubscribe() -> None:
            listeners = self._listeners.get(user_id, {})
            listeners.pop(token, None)
            if not listeners:
                self._listeners.pop(user_id, None)

        return unsubscribe

    async def publish(self, event: ServerEvent) -> None:
        """An event raised inside a request concerns that request's user only."""
        if isinstance(event, ResourceUpdated):
            message = {"type": live.MESSAGE_TYPE, "user_id": current_user().id, "uris": [event.uri]}
            await live.send_all([message])

    def deliver(self, message: dict) -> None:
        """Hand one update message to the streams of its user, in the order received."""
        listeners = list(self._listeners.get(message.get("user_id"), {}).values())
        for uri in message.get("uris", ()):
            event = ResourceUpdated(uri=uri)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # one broken stream must not starve the others
                    logger.exception("listen stream raised; continuing")

    async def _receive(self, layer, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == live.MESSAGE_TYPE:
                self.deliver(message)

    @staticmethod
    async def _send(queue: asyncio.Queue) -> None:
        while True:
            await live.send_all(await queue.get())

    @asynccontextmanager
    async def running(self):
        """A part of the MCP lifespan: join the group, receive updates, and send what the
        consumer hands over from its thread, in order, from this loop."""
        layer = get_channel_layer()
        # The layer's default prefix: with channels-redis' queue-based layer, every channel of
        # a process under one prefix shares one blocking read, which the WebSocket consumers
        # use too; a prefix of its own would hold the process's receive lock in a second read.
        channel = await layer.new_channel()
        await layer.group_add(live.GROUP, channel)
        loop = asyncio.get_running_loop()
        outgoing: asyncio.Queue = asyncio.Queue()
        tasks = [
            loop.create_task(self._receive(layer, channel)),
            loop.create_task(self._send(outgoing)),
        ]
        live.bind_outgoing(loop, outgoing)
        try:
            yield self
        finally:
            live.unbind_outgoing(loop)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            with suppress(Exception):
                await layer.group_discard(live.GROUP, channel)


bus = UserSubscriptionBus()
