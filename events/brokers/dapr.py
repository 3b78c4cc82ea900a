"""The Dapr broker: publish through the sidecar with the official SDK.

Each envelope becomes one CloudEvent whose id is the ``event_id`` (``cloudevent.id``), whose type
is the ``event_type``, and whose ``partitionKey`` is the user id, so Kafka keeps one user's events
in one partition and in order. Batches go through the bulk publish API; a batch of one through
the single publish API. The sidecar's address comes from the SDK's own variables
(``DAPR_GRPC_ENDPOINT``, ...); its token from the ``DAPR_API_TOKEN`` setting (the variable, or
``DAPR_API_TOKEN_FILE``), which every client made by ``dapr_client`` sends as ``dapr-api-token``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from dapr.clients import BulkPublishEntry, DaprClient
from dapr.conf import settings as dapr_settings
from django.conf import settings

from events.brokers import BrokerUnavailable, OutboxRow

SOURCE = "todo-backend"
CONTENT_TYPE = "application/json"


def publish_metadata(row: OutboxRow) -> dict[str, str]:
    return {
        "partitionKey": row.user_id,
        "cloudevent.id": str(row.event_id),
        "cloudevent.type": row.event_type,
        "cloudevent.source": SOURCE,
    }


def use_api_token() -> None:
    """Hand the ``DAPR_API_TOKEN`` setting to the SDK, whose clients send it as
    ``dapr-api-token`` on every call (publish, subscriptions, jobs, its health check). Without
    one, the SDK reads its own variable."""
    token = getattr(settings, "DAPR_API_TOKEN", "")
    if token:
        setattr(dapr_settings, "DAPR_API_TOKEN", token)  # noqa: B010 (read through __getattr__)
    else:
        vars(dapr_settings).pop("DAPR_API_TOKEN", None)


def dapr_client(**options) -> DaprClient:
    """A ``DaprClient`` that carries the app's token. It waits for the sidecar's health
    endpoint (``DAPR_HEALTH_TIMEOUT``, 60 s by default)."""
    use_api_token()
    return DaprClient(**options)


class DaprBroker:
    name = "dapr"

    def __init__(self, *, pubsub_name: str, client: DaprClient | None = None):
        self.pubsub_name = pubsub_name
        self._client = client

    @property
    def client(self) -> DaprClient:
        if self._client is None:
            self._client = dapr_client()
        return self._client

    def publish(self, rows: list[OutboxRow]) -> set[uuid.UUID]:
        by_topic: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            for topic in row.topics:
                by_topic[topic].append(row)
        failed: set[uuid.UUID] = set()
        try:
            client = self.client
            for topic, topic_rows in by_topic.items():
                if len(topic_rows) == 1:
                    row = topic_rows[0]
                    client.publish_event(
                        pubsub_name=self.pubsub_name,
                        topic_name=topic,
                        data=row.envelope_json,
                        data_content_type=CONTENT_TYPE,
                        publish_metadata=publish_metadata(row),
                    )
                    continue
                response = client.publish_events(
                    pubsub_name=self.pubsub_name,
                    topic_name=topic,
                    data=[
                        BulkPublishEntry(
                            event=row.envelope_json,
                            metadata=publish_metadata(row),
                            content_type=CONTENT_TYPE,
                            entry_id=str(row.event_id),
                        )
                        for row in topic_rows
                    ],
                    data_content_type=CONTENT_TYPE,
                )
                failed.update(uuid.UUID(entry.entry_id) for entry in response.failed_entries)
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return failed

    def after_commit(self, rows: list[OutboxRow]) -> None:
        pass

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
