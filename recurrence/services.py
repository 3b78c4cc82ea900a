"""Writes of the recurrence app: the next instance of a series, and stopping a series.

The next instance is created through ``tasks.services.task_create`` like any other task (so it
gets its ``task.created`` event and its reminder); the (series, due time) unique constraint
behind ``TaskConflict(code="duplicate_instance")`` is what makes a repeated or concurrent
completion give one instance.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.locking import lock_user
from recurrence import selectors
from recurrence.metrics import RECURRENCE_GENERATION
from recurrence.models import StoppedSeries
from tasks.errors import TaskConflict
from tasks.models import Task
from tasks.recurrence_rules import (
    RecurrenceError,
    SeriesPosition,
    following_instances,
    parse_rule,
)
from tasks.services import task_create
from tasks.validation import MAX_REMINDER_OFFSET

logger = logging.getLogger(__name__)


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


def _reminder_offset(snapshot: dict, due_at: datetime) -> timedelta | None:
    """The instance's reminder as an offset before its due time, for the next instance."""
    remind_at = _when(snapshot.get("remind_at"))
    if remind_at is None:
        return None
    offset = due_at - remind_at
    if timedelta(0) <= offset <= MAX_REMINDER_OFFSET:
        return offset
    return None


def series_create_next(*, user_id: str, snapshot: dict) -> Task | None:
    """Create the instance that follows a closed one (``snapshot`` is the completed or skipped
    task's representation). Returns None when there is nothing to create: not recurring, the
    series was stopped or has ended, or a later instance exists already (a redelivered event, a
    task completed again after a reopen, another consumer that got there first). A rule that
    cannot be expanded (stored before a fix, say) ends the series with a warning in the log.

    Its due time is the first of ``tasks.recurrence_rules.following_instances``, the function
    ``GET /api/tasks/<id>/occurrences/`` lists the series with.
    """
    rule_text = snapshot.get("recurrence_pattern") or "none"
    series = snapshot.get("series_id")
    due_at = _when(snapshot.get("due_date"))
    if rule_text == "none" or not series or due_at is None:
        return None
    series_id = uuid.UUID(str(series))
    with transaction.atomic():
        lock_user(user_id)
        if selectors.series_is_stopped(user_id=user_id, series_id=series_id):
            return None
        if selectors.series_has_instance_after(
            user_id=user_id, series_id=series_id, task_id=snapshot["id"]
        ):
            return None
        anchored = selectors.series_anchor(
            user_id=user_id, series_id=series_id, task_id=snapshot["id"]
        )
        if anchored is None:
            # Every instance is gone: carry on from this one.
            logger.warning(
                "series %s has no instance left; restarting it from its last due time", series_id
            )
            anchored = (due_at, int(snapshot.get("series_index") or 0))
        anchor, anchor_index = anchored
        tz_name = snapshot.get("timezone") or "UTC"
        now = timezone.now()
        closed_at = _when(snapshot.get("completed_at")) or _when(snapshot.get("skipped_at")) or now
        try:
            rule = parse_rule(rule_text)
            if rule is None:
                return None
            position = SeriesPosition(
                rule=rule,
                tz=tz_name,
                anchor=anchor,
                anchor_index=anchor_index,
                due_at=due_at,
                index=int(snapshot.get("series_index") or 0),
                repeat_from=snapshot.get("repeat_from") or "due",
            )
            found = next(following_instances(position, closed_at=closed_at, now=now), None)
        except (RecurrenceError, ValueError, OverflowError, TypeError) as exc:
            # Retrying cannot make a rule expandable: end the series instead of dead-lettering.
            logger.warning(
                "series %s of user %s ends: its rule %r cannot be expanded (%s)",
                series_id,
                user_id,
                rule_text,
                exc,
            )
            return None
        if found is None:
            return None  # the series has ended (until / count)
        try:
            task = task_create(
                user_id=user_id,
                title=snapshot["title"],
                description=snapshot.get("description") or "",
                priority=snapshot.get("priority") or "medium",
                tags=snapshot.get("tags") or [],
                due_date=found.due_at,
                reminder_time=_reminder_offset(snapshot, due_at),
                recurrence_pattern=rule_text,
                timezone_name=tz_name,
                repeat_from=snapshot.get("repeat_from") or "due",
                series_id=series_id,
                series_anchor=found.anchor,
                series_index=found.index,
                series_anchor_index=found.anchor_index,
                check_reminder_in_past=False,
            )
        except TaskConflict as exc:
            if exc.code == "duplicate_instance":
                return None
            raise
    completed_at = _when(snapshot.get("completed_at"))
    if completed_at is not None:
        RECURRENCE_GENERATION.observe(max((timezone.now() - completed_at).total_seconds(), 0.0))
    return task


def series_stop(*, user_id: str, series_id: uuid.UUID | str, task_id: int) -> bool:
    """Mark a series as ended; True when this call ended it."""
    with transaction.atomic():
        lock_user(user_id)
        _, created = StoppedSeries.objects.get_or_create(
            series_id=uuid.UUID(str(series_id)),
            defaults={"user_id": user_id, "task_id": task_id, "stopped_at": timezone.now()},
        )
    return created
