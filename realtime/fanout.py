"""The ``realtime`` event consumer: each ``task-updates`` event goes to its user's sockets.

Embedded, it runs in the server process (a worker thread of the events app); distributed, as
``python manage.py run_consumer realtime`` with the Redis channel layer, reaching the sockets of
every web process.

Frames leave after the transaction that records the consumer's progress commits
(``on_commit``), so a batch that is rolled back and retried sends nothing twice. Should a frame
be lost anyway (the process dies right after the commit, or the channel layer drops a message),
the socket notices the gap in the user's sequence numbers and fills it from the event log; a
duplicate is dropped by its sequence number. Whoever receives an event is decided in
``realtime.groups`` from ``envelope.user_id`` alone.
"""

from __future__ import annotations

import logging

from django.db import transaction

from events.topics import TASK_UPDATES
from realtime import delivery
from realtime.frames import LAYER_EVENT, dumps, event_frame
from realtime.groups import recipient_group

logger = logging.getLogger(__name__)

CONSUMER_NAME = "realtime"


def layer_message(envelope) -> dict:
    """The channel-layer message for one event: the frame encoded once for every socket, plus
    what a socket needs to order it and to measure commit-to-frame latency."""
    data = envelope.model_dump(mode="json")
    return {
        "type": LAYER_EVENT,
        "user_id": envelope.user_id,
        "sequence": envelope.sequence,
        "ts": envelope.timestamp.timestamp(),
        "text": dumps(event_frame(data)),
    }


def _send(batch: list[tuple[str, dict]]) -> None:
    try:
        delivery.group_send_many(batch)
    except Exception:
        # The sockets fill the gap from the event log when the next event reaches them.
        logger.exception("realtime fan-out of %d event(s) failed", len(batch))


def deliver(envelope) -> None:
    deliver_batch([envelope])


def deliver_batch(envelopes) -> None:
    batch = [(recipient_group(envelope), layer_message(envelope)) for envelope in envelopes]
    transaction.on_commit(lambda: _send(batch), robust=True)


def register() -> None:
    from events.consumers import register_consumer

    register_consumer(
        CONSUMER_NAME, topic=TASK_UPDATES, handle_batch=deliver_batch, writes_for_users=False
    )(deliver)
