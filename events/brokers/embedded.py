"""The embedded broker: the outbox table is the log.

A row is in the log from the moment its transaction commits, and embedded consumers read it
there (``events.log``), woken by the writer's commit. Nothing is queued for the relay
(``events.conf.relay_publishes``); rows queued while a broker was configured are only taken off
the queue.
"""

from __future__ import annotations

import uuid

from events.brokers import OutboxRow


class EmbeddedBroker:
    name = "embedded"
    # Nothing to stamp (the rows were in the log when they committed) and nothing to send.
    stamps_sent_at = False
    publishes_envelopes = False

    def publish(self, rows: list[OutboxRow]) -> set[uuid.UUID]:
        return set()

    def after_commit(self, rows: list[OutboxRow]) -> None:
        pass

    def close(self) -> None:
        pass
