"""Where the relay publishes: one small interface, two adapters.

- ``EmbeddedBroker`` (the default without a Dapr sidecar): the outbox itself is the log, which
  embedded consumers read with a cursor (``events.log``); there is nothing to publish.
- ``DaprBroker``: the Dapr pub/sub API through the official SDK, one CloudEvent per envelope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from events import conf


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: uuid.UUID
    event_type: str
    user_id: str
    sequence: int
    topics: tuple[str, ...]
    envelope_json: str


class BrokerUnavailable(Exception):
    """Publishing failed as a whole (the broker or sidecar is down, a timeout): retry later."""


class Broker(Protocol):
    name: str
    # Optional: ``stamps_sent_at`` (False: the relay leaves ``sent_at`` alone) and
    # ``publishes_envelopes`` (False: the relay does not read ``envelope_json`` for it), both
    # True when absent.

    def publish(self, rows: list[OutboxRow]) -> set[uuid.UUID]:
        """Publish ``rows`` (in this order) inside the relay's transaction. Returns the event
        ids that were not accepted; raises ``BrokerUnavailable`` if nothing could be sent."""

    def after_commit(self, rows: list[OutboxRow]) -> None:
        """Called once the rows are marked sent and committed."""

    def close(self) -> None: ...


def get_broker(name: str | None = None) -> Broker:
    name = name or conf.get("EVENTS_BROKER")
    if name == "embedded":
        from events.brokers.embedded import EmbeddedBroker

        return EmbeddedBroker()
    if name == "dapr":
        from events.brokers.dapr import DaprBroker

        return DaprBroker(pubsub_name=conf.get("DAPR_PUBSUB_NAME"))
    raise ValueError(f"Unknown EVENTS_BROKER {name!r}: use 'embedded' or 'dapr'.")
