"""Reads of the event log, always scoped to one user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson
from django.db import connection
from django.db.models import BigIntegerField
from django.db.models.expressions import RawSQL

from events.models import OutboxEvent, UserEventSequence
from events.schemas import Envelope, parse_envelope


@dataclass(frozen=True)
class Backlog:
    """What a user missed after a sequence number. ``complete`` is false when events in between
    are no longer kept (the client must refetch)."""

    envelopes: list[dict]
    complete: bool


def events_for_user_since(*, user_id: str, after_sequence: int, limit: int = 500) -> Backlog:
    """The user's committed events with a sequence above ``after_sequence``, in order (every
    event type is on ``task-updates``, so this is what that user's clients missed). Incomplete
    when the next one has expired, or when more than ``limit`` are missing."""
    last = (
        UserEventSequence.objects.filter(user_id=user_id)
        .values_list("last_sequence", flat=True)
        .first()
    ) or 0
    if last <= after_sequence:
        return Backlog(envelopes=[], complete=True)
    rows = list(
        OutboxEvent.objects.filter(user_id=user_id, sequence__gt=after_sequence)
        .order_by("sequence")
        .values_list("sequence", "envelope")[:limit]
    )
    complete = bool(rows) and rows[0][0] == after_sequence + 1 and rows[-1][0] == last
    return Backlog(envelopes=[envelope for _, envelope in rows], complete=complete)


def latest_sequence_for_user(*, user_id: str) -> int:
    """The sequence of the user's newest committed event (0: none yet)."""
    return (
        UserEventSequence.objects.filter(user_id=user_id)
        .values_list("last_sequence", flat=True)
        .first()
    ) or 0


def latest_sequence_expression(*, user_id: str) -> RawSQL:
    """``latest_sequence_for_user`` as an expression, for a read that must see the sequence in
    the same snapshot as its rows (one statement sees one snapshot)."""
    table = UserEventSequence._meta.db_table
    return RawSQL(  # noqa: S611 (the user id is a parameter)
        f'COALESCE((SELECT last_sequence FROM "{table}" WHERE user_id = %s), 0)',  # noqa: S608
        [user_id],
        output_field=BigIntegerField(),
    )


class Change(NamedTuple):
    """One event of a change feed: what happened, and to which subject (``subject_id``, read
    from the payload key the caller names); ``payload`` only for events without one."""

    sequence: int
    event_type: str
    event_id: str
    timestamp: str
    subject_id: int | None
    payload: dict | None


@dataclass(frozen=True)
class ChangePage:
    changes: list[Change]
    has_more: bool
    # The user's events between ``after_sequence`` and the first one kept are gone (or the
    # sequence was never handed out): the caller must start again from a snapshot.
    gone: bool


# The envelope's header and the payload's subject only, never the task snapshot each payload
# carries; the payload itself only for events about no subject (a page is mostly task events).
_CHANGES = """
SELECT sequence, event_type, event_id::text, envelope->>'timestamp',
       (envelope->'payload'->>%(subject_key)s)::bigint,
       CASE WHEN envelope->'payload' ? %(subject_key)s THEN NULL
            ELSE (envelope->'payload')::text END
FROM events_outboxevent
WHERE user_id = %(user_id)s AND sequence > %(after_sequence)s
ORDER BY sequence
LIMIT %(limit)s
"""


def changes_for_user_since(
    *, user_id: str, after_sequence: int, limit: int, subject_key: str
) -> ChangePage:
    """The user's committed events after ``after_sequence``, oldest first, at most ``limit``.

    A page of a thousand is read as plain columns by one statement (no model instances, no
    JSON decoded but the rare payload without a subject): building them costs less than the
    round trip."""
    latest = latest_sequence_for_user(user_id=user_id)
    if after_sequence > latest:
        return ChangePage(changes=[], has_more=False, gone=True)
    if after_sequence == latest:
        return ChangePage(changes=[], has_more=False, gone=False)
    with connection.cursor() as cursor:
        cursor.execute(
            _CHANGES,
            {
                "subject_key": subject_key,
                "user_id": user_id,
                "after_sequence": after_sequence,
                "limit": limit + 1,
            },
        )
        rows = cursor.fetchall()
    if not rows or rows[0][0] != after_sequence + 1:
        return ChangePage(changes=[], has_more=False, gone=True)
    changes = [
        Change(
            sequence,
            event_type,
            event_id,
            timestamp,
            subject_id,
            orjson.loads(payload) if payload is not None else None,
        )
        for sequence, event_type, event_id, timestamp, subject_id, payload in rows[:limit]
    ]
    return ChangePage(changes=changes, has_more=len(rows) > limit, gone=False)


def recent_events_about(
    *, user_id: str, subject_key: str, subject_id: int, event_prefix: str, since: datetime
) -> list[Envelope]:
    """The user's events of types starting with ``event_prefix`` whose payload's
    ``subject_key`` is ``subject_id``, recorded at ``since`` or later, newest first. Walks the
    user's events backwards by sequence (the unique index), so a short window stays cheap."""
    rows = (
        OutboxEvent.objects.filter(
            user_id=user_id,
            event_type__startswith=event_prefix,
            created_at__gte=since,
            **{f"envelope__payload__{subject_key}": subject_id},
        )
        .order_by("-sequence")
        .values_list("envelope", flat=True)
    )
    return [parse_envelope(envelope) for envelope in rows]
