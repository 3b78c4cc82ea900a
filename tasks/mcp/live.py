"""Live changes for listening agents: the ``mcp`` consumer of the ``task-updates`` topic.

The same committed event stream that feeds the WebSockets tells each ``subscriptions/listen``
stream (``tasks.mcp.listen``) which of its user's resources changed: ``task://{id}`` for the
task, and the list resources (``tasks://today``, ``tasks://overdue``, ``tasks://upcoming``)
when the task has or had a due date. One channel-layer message per event, sent after the
consumer's transaction commits, reaches every server process (in memory when embedded, Redis
in a cluster); each process hands it only to the streams of the event's user. The consumer
handles one user's events in sequence order and a process receives them in the order sent.

This module is imported when the app starts (to register the consumer), so it loads neither
the MCP SDK nor anything of the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from events.topics import TASK_UPDATES

logger = logging.getLogger(__name__)

CONSUMER_NAME = "mcp"
GROUP = "mcp-listen"
MESSAGE_TYPE = "mcp.resources.updated"
LIST_RESOURCES = ("tasks://today", "tasks://overdue", "tasks://upcoming")


def task_uri(task_id: int) -> str:
    return f"task://{task_id}"


def changed_resources(envelope) -> list[str]:
    """The resources of the event's user whose content this event may have changed."""
    payload = envelope.payload
    task_id = getattr(payload, "task_id", None)
    if task_id is None:
        return []
    uris = [task_uri(task_id)]
    due_now = getattr(getattr(payload, "task_data", None), "due_date", None)
    due_before = (getattr(payload, "previous", None) or {}).get("due_date")
    if due_now is not None or due_before is not None:
        uris.extend(LIST_RESOURCES)
    return uris


def layer_message(envelope) -> dict:
    return {
        "type": MESSAGE_TYPE,
        "user_id": envelope.user_id,
        "sequence": envelope.sequence,
        "ts": envelope.timestamp.timestamp(),
        "uris": changed_resources(envelope),
    }


# --- getting messages from the consumer's thread onto the channel layer -------------------

# The server loop of this process and its queue of outgoing batches (``tasks.mcp.listen``
# registers them while it runs); a process without one sends straight to a network layer.
_outgoing: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}


def bind_outgoing(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    _outgoing["server"] = (loop, queue)


def unbind_outgoing(loop: asyncio.AbstractEventLoop) -> None:
    if _outgoing.get("server", (None,))[0] is loop:
        _outgoing.pop("server", None)


async def send_all(messages: Iterable[dict]) -> None:
    layer = get_channel_layer()
    for message in messages:
        try:
            await layer.group_send(GROUP, message)
        except Exception:
            # Notifications are level triggers without replay: a listener refetches on the next.
            logger.exception("mcp listen fan-out failed")


def _hand_over(messages: list[dict]) -> None:
    bound = _outgoing.get("server")
    if bound is not None:
        loop, queue = bound
        try:
            loop.call_soon_threadsafe(queue.put_nowait, messages)
            return
        except RuntimeError:  # that loop has closed
            _outgoing.pop("server", None)
    if isinstance(get_channel_layer(), InMemoryChannelLayer):
        return  # no server loop in this process: nobody can be listening to this layer
    async_to_sync(send_all)(messages)


def deliver_batch(envelopes) -> None:
    messages = [
        message
        for envelope in envelopes
        if envelope.event_type.startswith("task.") and (message := layer_message(envelope))["uris"]
    ]
    if messages:
        transaction.on_commit(lambda: _hand_over(messages), robust=True)


def deliver(envelope) -> None:
    deliver_batch([envelope])


def register_listen_consumer() -> None:
    from events.consumers import register_consumer

    register_consumer(
        CONSUMER_NAME, topic=TASK_UPDATES, handle_batch=deliver_batch, writes_for_users=False
    )(deliver)
