"""Catching a reconnecting client up from the event log (the events app's outbox).

Every event of a user has a sequence number, 1, 2, 3, ... in commit order with no gaps, and the
outbox keeps each event for days. A client that saw up to ``N`` gets the events after ``N`` on
``task-updates``, in order, when the first one it missed is still within
``REALTIME_RETENTION_SECONDS``; otherwise it is told to refetch (``resync``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from events.models import UserEventSequence
from events.schemas import event_types
from events.selectors import events_for_user_since
from events.topics import TASK_UPDATES
from realtime.frames import dumps, event_frame

# Past this many missed events a refetch is cheaper than a replay.
MAX_REPLAY = 500


@dataclass(frozen=True)
class ResumePlan:
    latest: int  # the user's newest sequence when the plan was made
    frames: list[tuple[int, str]] = field(default_factory=list)  # (sequence, frame JSON)
    resync_reason: str | None = None


def latest_sequence(user_id: str) -> int:
    value = (
        UserEventSequence.objects.filter(user_id=user_id)
        .values_list("last_sequence", flat=True)
        .first()
    )
    return value or 0


def latest_sequences(user_ids) -> dict[str, int]:
    """The newest sequence of each of ``user_ids`` that has any event."""
    user_ids = list(user_ids)
    latest: dict[str, int] = {}
    for start in range(0, len(user_ids), 1000):
        latest.update(
            UserEventSequence.objects.filter(
                user_id__in=user_ids[start : start + 1000]
            ).values_list("user_id", "last_sequence")
        )
    return latest


def plan(user_id: str, after: int | None, *, upto: int | None = None) -> ResumePlan:
    """What to send a client of ``user_id`` that last saw ``after`` (None: a fresh client):
    every event up to the newest, or only up to ``upto`` (filling a gap before a live event)."""
    latest = upto if upto is not None else latest_sequence(user_id)
    if after is None or after == latest:
        return ResumePlan(latest=latest)
    if after > latest:
        return ResumePlan(latest=latest, resync_reason="unknown_sequence")
    if latest - after > MAX_REPLAY:
        return ResumePlan(latest=latest, resync_reason="too_many_missed")
    wanted = MAX_REPLAY if upto is None else upto - after
    envelopes = events_for_user_since(user_id=user_id, after_sequence=after, limit=wanted).envelopes
    sequences = [envelope["sequence"] for envelope in envelopes]
    if not sequences or sequences != list(range(after + 1, sequences[-1] + 1)):
        return ResumePlan(latest=latest, resync_reason="expired")
    if sequences[-1] < latest:
        return ResumePlan(latest=latest, resync_reason="expired")
    cutoff = timezone.now() - timedelta(seconds=settings.REALTIME_RETENTION_SECONDS)
    if datetime.fromisoformat(envelopes[0]["timestamp"].replace("Z", "+00:00")) < cutoff:
        return ResumePlan(latest=latest, resync_reason="expired")
    frames = [
        (envelope["sequence"], dumps(event_frame(envelope)))
        for envelope in envelopes
        if _on_task_updates(envelope["event_type"])
    ]
    # Events committed after ``latest`` was read may be there too; the plan covers them.
    return ResumePlan(latest=sequences[-1], frames=frames)


def _on_task_updates(event_type: str) -> bool:
    known = event_types().get(event_type)
    return known is None or TASK_UPDATES in known.topics
