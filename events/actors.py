"""Who is acting: set by each surface's entry, read when an event is recorded.

The REST view base, the MCP tool call and the admin's views each run their work inside
``acting_as``; anything else (consumers, management commands, the reminder scheduler) acts as
the system. ``events.services.event_records`` stamps the current actor on every envelope, so no
service signature has to carry it.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from events.schemas import ACTOR_TEXT_MAX_LENGTH, Actor, ActorClient

SYSTEM = Actor(surface="system")

_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("actor", default=SYSTEM)


def current_actor() -> Actor:
    return _current.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    reset = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(reset)


def replace_actor(actor: Actor) -> None:
    """Name the actor more precisely inside an ``acting_as`` block (which restores the one
    before it when it ends): a request knows its token only once it is verified."""
    _current.set(actor)


def token_id(token: str, claims: dict) -> str:
    """The token's ``jti`` when it has one; otherwise a hash of the token itself, so the same
    token is the same id and the token cannot be read back from it."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return jti[:ACTOR_TEXT_MAX_LENGTH]
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:ACTOR_TEXT_MAX_LENGTH]


def client_from(info: object) -> ActorClient | None:
    """An MCP ``clientInfo`` (``{"name", "version"}``, or an object with those attributes)."""
    if info is None:
        return None
    get = info.get if isinstance(info, dict) else lambda name: getattr(info, name, None)
    name = _text(get("name"))
    if name is None:
        return None
    return ActorClient(name=name, version=_text(get("version")))


def actor_for(
    surface: str,
    *,
    token: str | None = None,
    claims: dict | None = None,
    client: ActorClient | None = None,
    user_agent: str | None = None,
    admin_user: str | None = None,
) -> Actor:
    return Actor(
        surface=surface,
        client=client,
        user_agent=_text(user_agent) if client is None else None,
        token_id=token_id(token, claims or {}) if token else None,
        admin_user=_text(admin_user),
    )
