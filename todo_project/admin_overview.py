"""The operators' overview in the admin (``/admin/overview/``): whether the event consumers keep
up, the relay's backlog, recent dead letters, the reminders about to fire and the last ones that
fired late. The event figures come from ``events.health.event_health``, the same reads the
Prometheus collector exports, so the page and the alerts never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from events.health import ConsumerPosition, event_health
from reminders.admin import format_lateness, reminder_lateness
from reminders.selectors import notifications_fired_late, reminders_due_soon
from todo_project.doctor import CONSUMER_LAG_LIMIT, RELAY_AGE_LIMIT_SECONDS

DUE_SOON = timedelta(hours=1)


@dataclass(frozen=True)
class ConsumerRow:
    name: str
    lag: int | None
    last_event_at: datetime | None
    last_event_age: str
    behind: bool  # past the alert's threshold
    dead_letters_24h: int


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    if now - moment < timedelta(seconds=1):
        return "just now"
    return f"{format_lateness(now - moment)} ago"


def _consumer_rows(
    positions: list[ConsumerPosition], dead_letters: dict[str, int], now: datetime
) -> list[ConsumerRow]:
    return [
        ConsumerRow(
            name=position.consumer,
            lag=position.lag_events,
            last_event_at=position.last_event_at,
            last_event_age=_age(position.last_event_at, now),
            behind=position.lag_events is not None and position.lag_events > CONSUMER_LAG_LIMIT,
            dead_letters_24h=dead_letters.get(position.consumer, 0),
        )
        for position in positions
    ]


def overview_context(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    health = event_health(now=now)
    late = notifications_fired_late()
    oldest = health.relay_oldest_age_seconds
    return {
        "now": now,
        "health": health,
        "consumers": _consumer_rows(health.consumers, health.dead_letters_24h, now),
        "dead_letters_24h_total": sum(health.dead_letters_24h.values()),
        "relay_oldest": format_lateness(timedelta(seconds=oldest)) if oldest else "",
        "relay_behind": oldest is not None and oldest > RELAY_AGE_LIMIT_SECONDS,
        "due_soon": [
            (reminder, reminder_lateness(reminder, now=now))
            for reminder in reminders_due_soon(within=DUE_SOON, now=now)
        ],
        "fired_late": [
            (notification, format_lateness(notification.created_at - notification.remind_at))
            for notification in late
        ],
        "consumer_lag_limit": CONSUMER_LAG_LIMIT,
    }


def admin_overview(request):
    context = {
        **admin.site.each_context(request),
        "title": "Operations overview",
        "subtitle": None,
        **overview_context(),
    }
    request.current_app = admin.site.name
    return TemplateResponse(request, "admin/operations_overview.html", context)


overview_view = admin.site.admin_view(admin_overview)
