"""Event envelopes and the registry of event types.

Every event has the same envelope (``event_id``, ``event_type``, ``schema_version``, ``user_id``,
``timestamp``, ``sequence``, ``payload``, and the optional ``actor``); the payload's model depends on the type. An envelope is
validated when it is recorded (an invalid one never reaches the outbox) and again when a consumer
receives it (an invalid one is dead-lettered). Each app declares its own types (an ``Envelope``
subclass that pins ``event_type`` and the payload model) in its ``event_types.py`` and registers
them with ``register_event_type`` from its ``AppConfig.ready``. ``docs/events/`` holds the JSON
Schema of each type, generated from the registry by ``manage.py export_event_schemas``.

Compatibility rules within one ``schema_version``: fields are only ever added where a payload
allows unknown fields (consumers ignore what they do not know); anything else is a new version.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    TypeAdapter,
    ValidationError,
)

from core.users import USER_ID_MAX_LENGTH
from events import topics as topic_names

SCHEMA_VERSION = 1


def new_event_id() -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Event ids are keys of unique indexes (the outbox, processed events, consumers' records). Random
    (version 4) ids land on random leaf pages of each, so every insert touches a page of its own;
    ids that grow with time land on the right edge, a few pages kept in memory."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # variant RFC 9562
    return uuid.UUID(int=value)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# RFC 3339 in UTC ("2025-01-31T09:00:00Z"); an offset is accepted on input and converted.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class StrictModel(BaseModel):
    """A frozen model that refuses fields it does not declare."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SURFACES = ("rest", "mcp", "admin", "system")
ACTOR_TEXT_MAX_LENGTH = 200


class ActorClient(StrictModel):
    """The MCP client, as it names itself (``clientInfo``)."""

    name: str = Field(max_length=ACTOR_TEXT_MAX_LENGTH)
    version: str | None = Field(default=None, max_length=ACTOR_TEXT_MAX_LENGTH)


class Actor(StrictModel):
    """Who made the change: the surface it came through and, when known, more."""

    surface: Literal[SURFACES] = Field(  # type: ignore[valid-type]
        description="rest, mcp, admin, or system (consumers, commands, the scheduler)."
    )
    client: ActorClient | None = Field(
        default=None, description="MCP: the client's name and version from clientInfo."
    )
    user_agent: str | None = Field(
        default=None,
        max_length=ACTOR_TEXT_MAX_LENGTH,
        description="The HTTP User-Agent, when no clientInfo says who the client is.",
    )
    token_id: str | None = Field(
        default=None,
        max_length=ACTOR_TEXT_MAX_LENGTH,
        description="The bearer token's jti, or a SHA-256 of the token when it has none.",
    )
    admin_user: str | None = Field(
        default=None,
        max_length=ACTOR_TEXT_MAX_LENGTH,
        description="admin: the operator's Django username.",
    )
    undoes: uuid.UUID | None = Field(
        default=None, description="The event_id of the change this one undoes."
    )


class Envelope(StrictModel):
    """Common fields of every event. Subclasses pin ``event_type`` and the payload model."""

    event_id: uuid.UUID = Field(description="Unique id; the CloudEvent id on the broker.")
    event_type: str
    schema_version: Literal[1] = Field(description="Version of this event type's schema.")
    user_id: str = Field(min_length=1, max_length=USER_ID_MAX_LENGTH)
    timestamp: UtcDatetime = Field(description="When the change was recorded (RFC 3339, UTC).")
    sequence: PositiveInt = Field(
        description="Per user: 1, 2, 3, ... in commit order, with no gaps."
    )
    payload: BaseModel
    actor: Actor | None = Field(
        default=None,
        description="Who made the change (optional: events recorded before it existed have none).",
    )


@dataclass(frozen=True)
class EventType:
    name: str
    model: type[Envelope]
    topics: tuple[str, ...]
    description: str

    @property
    def version(self) -> int:
        return SCHEMA_VERSION


_EVENT_TYPES: dict[str, EventType] = {}


def register_event_type(
    model: type[Envelope], *, topics: tuple[str, ...], description: str
) -> EventType:
    """Add an event type (each app adds its own from ``AppConfig.ready``)."""
    annotation = model.model_fields["event_type"].annotation
    names: tuple[object, ...] = getattr(annotation, "__args__", ())
    name = names[0] if len(names) == 1 else None
    if not isinstance(name, str):
        raise TypeError(f"{model.__name__}.event_type must be a single Literal string")
    for topic in topics:
        topic_names.check_name(topic)
    event_type = EventType(name=name, model=model, topics=tuple(topics), description=description)
    existing = _EVENT_TYPES.get(event_type.name)
    if existing is not None and existing.model is not model:
        raise ValueError(f"Event type {event_type.name!r} is already registered")
    _EVENT_TYPES[event_type.name] = event_type
    _adapter.cache_clear()
    return event_type


def event_types() -> dict[str, EventType]:
    return dict(_EVENT_TYPES)


def get_event_type(name: str) -> EventType:
    try:
        return _EVENT_TYPES[name]
    except KeyError:
        raise InvalidEnvelope(f"Unknown event type {name!r}") from None


class InvalidEnvelope(ValueError):
    """A message that is not a valid envelope of a known event type."""


@functools.cache
def _adapter() -> TypeAdapter:
    """All registered envelopes as one union keyed by ``event_type``: JSON is validated in one
    pass, without building Python dicts first."""
    models = tuple(kind.model for kind in _EVENT_TYPES.values())
    union = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
    keyed: Any = Annotated[union, Field(discriminator="event_type")]
    return TypeAdapter(keyed)


def parse_envelope(data: bytes | str | dict) -> Envelope:
    """Validate a received message (JSON text or an already decoded object)."""
    try:
        if isinstance(data, bytes | str):
            return _adapter().validate_json(data)
        return _adapter().validate_python(data)
    except ValidationError:
        pass  # find out what is wrong, below, and say it plainly
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEnvelope(f"Not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEnvelope("An envelope must be a JSON object")
    name = data.get("event_type")
    if not isinstance(name, str):
        raise InvalidEnvelope("event_type is missing")
    model = get_event_type(name).model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEnvelope(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(item) for item in error["loc"]) or "(envelope)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def build_envelope(
    *,
    event_type: str,
    user_id: str,
    payload: dict | BaseModel,
    sequence: int,
    event_id: uuid.UUID | None = None,
    timestamp: datetime | None = None,
    actor: Actor | None = None,
) -> Envelope:
    """A validated envelope; raises ``InvalidEnvelope`` with what is wrong."""
    model = get_event_type(event_type).model
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    try:
        return model.model_validate(
            {
                "event_id": event_id or new_event_id(),
                "event_type": event_type,
                "schema_version": SCHEMA_VERSION,
                "user_id": user_id,
                "timestamp": timestamp or datetime.now(UTC),
                "sequence": sequence,
                "payload": payload,
                "actor": actor,
            }
        )
    except ValidationError as exc:
        raise InvalidEnvelope(f"{event_type}: {_describe(exc)}") from None


def json_schema(event_type: EventType) -> dict:
    schema = event_type.model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://todo-backend.local/schemas/events/{event_type.name}.v{event_type.version}.json",
        "title": f"{event_type.name} (schema version {event_type.version})",
        "description": event_type.description,
        "x-topics": list(event_type.topics),
        **{key: value for key, value in schema.items() if key not in {"title", "description"}},
    }
