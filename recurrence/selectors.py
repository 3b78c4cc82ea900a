"""Reads of recurring series, scoped to one user."""

from __future__ import annotations

import uuid
from datetime import datetime

from recurrence.models import StoppedSeries
from tasks.models import Task


def series_anchor(*, user_id: str, series_id: uuid.UUID, task_id: int) -> datetime | None:
    """The series' anchor as the task itself holds it; when that task is gone (or has left the
    series since), as the series' latest instance holds it."""
    anchor = (
        Task.objects.filter(pk=task_id, user_id=user_id, series_id=series_id)
        .values_list("series_anchor", flat=True)
        .first()
    )
    if anchor is not None:
        return anchor
    return (
        Task.objects.filter(user_id=user_id, series_id=series_id, series_anchor__isnull=False)
        .order_by("-due_at")
        .values_list("series_anchor", flat=True)
        .first()
    )


def series_has_instance_after(*, user_id: str, series_id: uuid.UUID, due_at: datetime) -> bool:
    return Task.objects.filter(user_id=user_id, series_id=series_id, due_at__gt=due_at).exists()


def series_is_stopped(*, user_id: str, series_id: uuid.UUID) -> bool:
    return StoppedSeries.objects.filter(series_id=series_id, user_id=user_id).exists()
