"""``client_request_id``: REST's ``Idempotency-Key`` for the write tools.

Every write tool takes it (``make_tool`` adds it to the schema). The same id with the same
tool and arguments answers the first result again and changes nothing; with anything else it
is the error ``idempotency_key_reused``; while the first call runs, ``idempotency_key_in_flight``.
Ids share the user's key space with REST's keys (``idempotency`` app) and are kept the same way:
claimed and answered in the transaction of the write, so a committed write always has its
id, and a refused call (a tool error) keeps nothing, so repeating it may succeed.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import orjson
from django.db import transaction
from mcp.types import CallToolResult
from pydantic import Field, TypeAdapter

from core.locking import user_locked_by_caller
from idempotency.models import KEY_MAX_LENGTH
from idempotency.services import key_claim, key_record_answer
from tasks.mcp.results import tool_error

ARGUMENT = "client_request_id"
METHOD = "MCP"
REPLAYED = "replayed"

ClientRequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        pattern=r"^[\x20-\x7e]+$",
        description="Optional. A unique id for this call (a UUID, say): a retry with the same "
        "id and arguments changes nothing and answers the first result again, as REST's "
        "Idempotency-Key does.",
    ),
]
CLIENT_REQUEST_ID = TypeAdapter(ClientRequestId)
SCHEMA = CLIENT_REQUEST_ID.json_schema()


@dataclass(frozen=True)
class RequestKey:
    key: str
    tool: str
    fingerprint: str


_current: contextvars.ContextVar[RequestKey | None] = contextvars.ContextVar(
    "mcp_request_key", default=None
)


def fingerprint(tool: str, arguments: dict) -> str:
    """What makes two calls "the same call" for an id: the tool and its arguments. It is taken
    before the arguments are checked, so any JSON a client sends must do: orjson writes no
    integer beyond 64 bits, and arguments holding one are written by the standard library
    (the same arguments always take the same way)."""
    try:
        text = orjson.dumps([tool, arguments], option=orjson.OPT_SORT_KEYS)
    except TypeError:
        text = json.dumps(
            [tool, arguments], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    return hashlib.sha256(text).hexdigest()


@contextmanager
def keyed(tool: str, key: str | None, arguments: dict) -> Iterator[None]:
    """Run a tool call under its ``client_request_id`` (or none)."""
    if key is None:
        yield
        return
    reset = _current.set(RequestKey(key, tool, fingerprint(tool, arguments)))
    try:
        yield
    finally:
        _current.reset(reset)


def current_key() -> RequestKey | None:
    return _current.get()


class KeyReused(Exception):
    pass


def once(request: RequestKey, user_id: str, answer: Callable[[], CallToolResult]) -> CallToolResult:
    """``answer()`` under the claimed id, in one transaction with it; or the stored result.
    Raises ``KeyInFlight`` / ``KeyReused``; an error ``answer()`` raises or returns rolls the
    whole call back, its id included."""
    with transaction.atomic():
        claim = key_claim(
            user_id=user_id,
            key=request.key,
            fingerprint=request.fingerprint,
            method=METHOD,
            path=f"mcp:{request.tool}",
        )
        if claim.stored is not None:
            if claim.stored.fingerprint != request.fingerprint:
                raise KeyReused(request.key)
            stored = CallToolResult.model_validate_json(claim.stored.body)
            return stored.model_copy(update={"meta": {**(stored.meta or {}), REPLAYED: True}})
        # The claim took the user's lock too (as REST's keyed writes do): the services' own
        # lock_user is not asked again.
        with user_locked_by_caller(user_id):
            result = answer()
        if result.is_error:
            transaction.set_rollback(True)
            return result
        assert claim.key_id is not None
        key_record_answer(
            key_id=claim.key_id,
            status=200,
            headers={},
            body=result.model_dump_json(by_alias=True, exclude_none=True).encode(),
        )
        return result


def in_flight_error() -> CallToolResult:
    return tool_error(
        "A call with this client_request_id is still running; retry shortly.",
        code="idempotency_key_in_flight",
        field=ARGUMENT,
        retry_after=1,
    )


def reused_error() -> CallToolResult:
    return tool_error(
        "This client_request_id was used for a different call; use a new id for a new call.",
        code="idempotency_key_reused",
        field=ARGUMENT,
    )
