"""Reads of recurring series, scoped to one user."""

from __future__ import annotations

import uuid
from datetime import datetime

from recurrence.models import StoppedSeries
from tasks.models import Task


def series_anchor(
    *, user_id: str, series_id: uuid.UUID, task_id: int
) -> tuple[datetime, int] | None:
    """The series' anchor and the index of the occurrence at it, as the task itself holds them;
    when that task is gone (or has left the series since), as the series' latest instance
    holds them."""
    anchor = (
        Task.objects.filter(
            pk=task_id, user_id=user_id, series_id=series_id, series_anchor__isnull=False
        )
        .values_list("series_anchor", "series_anchor_index")
        .first()
    )
    if anchor is not None:
        return anchor
    return (
        Task.objects.filter(user_id=user_id, series_id=series_id, series_anchor__isnull=False)
        .order_by("-pk")
        .values_list("series_anchor", "series_anchor_index")
        .first()
    )


def series_has_instance_after(*, user_id: str, series_id: uuid.UUID, task_id: int) -> bool:
    """Whether an instance was created after this one (its successor, in the trash or not):
    instances are created one after another, whatever their due times became since."""
    return Task.objects.filter(user_id=user_id, series_id=series_id, pk__gt=task_id).exists()


def series_is_stopped(*, user_id: str, series_id: uuid.UUID) -> bool:
    return StoppedSeries.objects.filter(series_id=series_id, user_id=user_id).exists()
