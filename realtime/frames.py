"""The wire protocol of ``/ws/tasks/``: frame shapes and close codes (see ``docs/realtime.md``).

Event frames are encoded once per event by the fan-out, not once per socket: the channel-layer
message carries the JSON text together with the few fields the socket needs to order it.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

TASK_EVENT_PREFIX = "task."
# After these the task is in no list (in the trash, or gone for good): frames carry no task.
TASK_GONE_EVENTS = frozenset({"task.deleted", "task.purged"})
NOTIFICATION_EVENT_PREFIX = "notification."
# The layer message type; Channels dispatches it to ``TaskUpdatesConsumer.realtime_event``.
LAYER_EVENT = "realtime.event"


class CloseCode(IntEnum):
    """Close codes the server uses. 4000-4999 are for applications (RFC 6455 section 7.4.2)."""

    TRY_AGAIN_LATER = 1013  # this server process holds as many sockets as it may (RFC 6455)
    BAD_REQUEST = 4400  # malformed handshake (e.g. last_sequence is not a number), bad Host
    UNAUTHORIZED = 4401  # token missing, malformed, badly signed, wrong issuer/audience
    FORBIDDEN = 4403  # Origin not allowed
    NOT_FOUND = 4404  # no WebSocket endpoint at this path
    TOKEN_EXPIRED = 4408  # token expired (at connect, or while connected)
    TOO_SLOW = 4409  # the client did not read its frames fast enough; reconnect and resume
    # too many invalid frames or messages, too many sockets of one user, or too many refused
    # handshakes from one address
    POLICY = 4429


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def event_frame(envelope_data: dict[str, Any]) -> dict[str, Any]:
    """The frame for one event, from the envelope as JSON-mode data.

    ``task`` is the snapshot after the change (``task.restored`` brings a task back from the
    trash), or ``None`` for a deletion or purge and for events that are not about a task's state; ``notification`` is set for ``notification.*`` events.
    """
    event_type = envelope_data["event_type"]
    payload = envelope_data.get("payload") or {}
    task = None
    if event_type.startswith(TASK_EVENT_PREFIX) and event_type not in TASK_GONE_EVENTS:
        task = payload.get("task_data")
    notification = None
    if event_type.startswith(NOTIFICATION_EVENT_PREFIX):
        notification = payload.get("notification")
        if notification is None and payload.get("notification_id") is not None:
            notification = {"id": payload["notification_id"]}
    task_id = payload.get("task_id")
    if task_id is None and isinstance(notification, dict):
        task_id = notification.get("task_id")
    return {
        "type": "event",
        "event_type": event_type,
        "sequence": envelope_data["sequence"],
        "event_id": str(envelope_data["event_id"]),
        "timestamp": envelope_data.get("timestamp"),
        "task_id": task_id,
        "task": task,
        "changed_fields": list(payload.get("changed_fields") or ()),
        "notification": notification,
    }


def hello_frame(*, user_id: str, last_sequence: int, ping_interval: float) -> dict[str, Any]:
    return {
        "type": "hello",
        "user_id": user_id,
        "last_sequence": last_sequence,
        "ping_interval": ping_interval,
    }


def resync_frame(*, reason: str, last_sequence: int) -> dict[str, Any]:
    return {"type": "resync", "reason": reason, "last_sequence": last_sequence}


def error_frame(*, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


PING = dumps({"type": "ping"})
PONG = dumps({"type": "pong"})
