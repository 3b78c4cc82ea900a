"""Operators' view of reminders and the notifications they leave. Read-only: the reminder
services keep both in step with their tasks, so an edit here would be undone or, worse, fire a
reminder twice."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from django.utils.text import Truncator

from core.admin import ReadOnlyAdmin
from reminders.models import Notification, Reminder, ReminderState

TITLE_CELL_CHARS = 50


class _ReadOnly(ReadOnlyAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


def format_lateness(late_by: timedelta) -> str:
    """``timedelta(seconds=75)`` -> ``"1 min 15 s"``; below a second, ``"on time"``."""
    seconds = int(late_by.total_seconds())
    if seconds < 1:
        return "on time"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{seconds} s"]
    return " ".join(part for part in parts if part and part != "0 s") or "on time"


def reminder_lateness(reminder: Reminder, *, now=None) -> str:
    """How late a fired reminder fired, or how overdue a scheduled one is; empty otherwise."""
    if reminder.state == ReminderState.FIRED and reminder.fired_at is not None:
        return format_lateness(reminder.fired_at - reminder.fire_at)
    now = now or timezone.now()
    if reminder.state == ReminderState.SCHEDULED and reminder.fire_at < now:
        return f"overdue {format_lateness(now - reminder.fire_at)}"
    return ""


class LateFilter(admin.SimpleListFilter):
    title = "timing"
    parameter_name = "timing"

    def lookups(self, request, model_admin):
        return [("overdue", "Scheduled, time passed"), ("next_hour", "Due in the next hour")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(state=ReminderState.SCHEDULED, fire_at__lt=now)
        if self.value() == "next_hour":
            return queryset.filter(
                state=ReminderState.SCHEDULED,
                fire_at__gte=now,
                fire_at__lt=now + timedelta(hours=1),
            )
        return queryset


@admin.register(Reminder)
class ReminderAdmin(_ReadOnly):
    list_display = (
        "task_id",
        "title_cell",
        "user_id",
        "state",
        "fire_at",
        "lateness",
        "fired_at",
        "job_synced",
    )
    list_filter = ("state", LateFilter, "job_synced")
    search_fields = ("=task_id", "=user_id")
    ordering = ("-fire_at",)
    show_full_result_count = False
    readonly_fields = (
        "task_id",
        "user_id",
        "title",
        "state",
        "fire_at",
        "lateness",
        "fired_at",
        "due_at",
        "timezone",
        "generation",
        "job_synced",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description="title", ordering="title")
    def title_cell(self, obj: Reminder) -> str:
        return Truncator(obj.title).chars(TITLE_CELL_CHARS)

    @admin.display(description="late")
    def lateness(self, obj: Reminder) -> str:
        return reminder_lateness(obj)

    def get_search_results(self, request, queryset, search_term):
        if search_term and not search_term.isdigit():
            # task_id is a number: search the user id alone rather than fail on the cast
            return queryset.filter(user_id=search_term), False
        return super().get_search_results(request, queryset, search_term)


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("unread", "Unread"), ("read", "Read"), ("dismissed", "Dismissed")]

    def queryset(self, request, queryset):
        if self.value() == "unread":
            return queryset.filter(read_at__isnull=True, dismissed_at__isnull=True)
        if self.value() == "read":
            return queryset.filter(read_at__isnull=False)
        if self.value() == "dismissed":
            return queryset.filter(dismissed_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(_ReadOnly):
    list_display = (
        "id",
        "title_cell",
        "user_id",
        "task_id",
        "remind_at",
        "created_at",
        "late",
        "read_at",
        "dismissed_at",
    )
    list_filter = ("late", ReadFilter, "kind")
    search_fields = ("=user_id", "=task_id")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    readonly_fields = (
        "user_id",
        "kind",
        "task_id",
        "reminder",
        "title",
        "due_at",
        "remind_at",
        "created_at",
        "late",
        "read_at",
        "dismissed_at",
    )
    fields = readonly_fields

    @admin.display(description="title", ordering="title")
    def title_cell(self, obj: Notification) -> str:
        return Truncator(obj.title).chars(TITLE_CELL_CHARS)

    def get_search_results(self, request, queryset, search_term):
        if search_term and not search_term.isdigit():
            return queryset.filter(user_id=search_term), False
        return super().get_search_results(request, queryset, search_term)
