"""Reads of reminders and notifications, scoped to one user where a user asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min
from django.utils import timezone

from reminders.models import Notification, Reminder, ReminderState

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    total: int
    limit: int
    offset: int


def notification_list_for_user(
    *, user_id: str, unread: bool | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> NotificationPage:
    """The inbox, newest first; dismissed notifications are not in it."""
    qs = Notification.objects.filter(user_id=user_id, dismissed_at__isnull=True)
    if unread is True:
        qs = qs.filter(read_at__isnull=True)
    elif unread is False:
        qs = qs.filter(read_at__isnull=False)
    rows = list(qs.order_by("-created_at", "-id")[offset : offset + limit])
    # A short page that is not past the end tells the total without counting.
    short_page = len(rows) < limit and (rows or offset == 0)
    total = offset + len(rows) if short_page else qs.count()
    return NotificationPage(notifications=rows, total=total, limit=limit, offset=offset)


def reminder_next_fire_time() -> datetime | None:
    """When the earliest scheduled reminder is due."""
    return Reminder.objects.filter(state=ReminderState.SCHEDULED).aggregate(first=Min("fire_at"))[
        "first"
    ]


def reminders_due(*, limit: int) -> list[tuple[int, str]]:
    """``(id, user_id)`` of up to ``limit`` scheduled reminders whose time has come, earliest
    first; read without locks (the caller locks what it fires)."""
    return list(
        Reminder.objects.filter(state=ReminderState.SCHEDULED, fire_at__lte=timezone.now())
        .order_by("fire_at")
        .values_list("pk", "user_id")[:limit]
    )


# --- operators' figures (the admin overview) ----------------------------------------------
OPERATOR_ROWS = 20


def reminders_due_soon(
    *,
    within: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    limit: int = OPERATOR_ROWS,
) -> list[Reminder]:
    """Scheduled reminders that fire within ``within`` of ``now``, earliest first; ones whose
    time has already passed (nothing fired them yet) come first, so they show."""
    now = now or timezone.now()
    return list(
        Reminder.objects.filter(state=ReminderState.SCHEDULED, fire_at__lte=now + within).order_by(
            "fire_at", "id"
        )[:limit]
    )


def notifications_fired_late(*, limit: int = OPERATOR_ROWS) -> list[Notification]:
    """The latest notifications whose reminder fired late (``Notification.late``: the
    scheduler or the sidecar was down or behind when it was due), newest first."""
    return list(Notification.objects.filter(late=True).order_by("-created_at", "-id")[:limit])
