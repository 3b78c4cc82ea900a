"""Reads of the event log, always scoped to one user."""

from __future__ import annotations

from dataclasses import dataclass

from events.models import OutboxEvent, UserEventSequence


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
