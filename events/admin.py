"""Operators' view of the event pipeline: dead letters (with replay), the outbox, consumer
cursors. Everything but replay is read-only: events are facts, not records to edit."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from events.models import ConsumerCursor, DeadLetter, OutboxEvent
from events.services import ReplayFailed, dead_letter_replay, last_line


class PendingFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "Not replayed"), ("replayed", "Replayed")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(replayed_at__isnull=True)
        if self.value() == "replayed":
            return queryset.filter(replayed_at__isnull=False)
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "consumer",
        "event_type",
        "user_id",
        "event_id",
        "attempts",
        "short_error",
        "last_failed_at",
        "replayed_at",
    )
    list_filter = (PendingFilter, "consumer", "event_type")
    search_fields = ("=event_id", "=user_id", "error")
    ordering = ("-last_failed_at",)
    actions = ["replay"]
    readonly_fields = (
        "consumer",
        "topic",
        "event_id",
        "event_type",
        "user_id",
        "message",
        "error_text",
        "attempts",
        "created_at",
        "last_failed_at",
        "replayed_at",
        "replay_count",
    )
    exclude = ("envelope", "raw", "error")

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return last_line(obj.error)[:120]

    @admin.display(description="message")
    def message(self, obj: DeadLetter):
        text = json.dumps(obj.envelope, indent=2) if obj.envelope is not None else obj.raw
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text)

    @admin.display(description="error")
    def error_text(self, obj: DeadLetter):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.error)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.action(description="Replay selected dead letters now")
    def replay(self, request, queryset):
        for letter in queryset.order_by("id"):
            try:
                outcome = dead_letter_replay(dead_letter_id=letter.pk)
            except ReplayFailed as exc:
                self.message_user(
                    request, f"Dead letter {letter.pk} failed again: {exc}", level=messages.ERROR
                )
                continue
            self.message_user(request, f"Dead letter {letter.pk} replayed: {outcome}.")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "user_id", "sequence", "created_at", "sent_at")
    list_filter = ("event_type",)
    search_fields = ("=event_id", "=user_id")
    ordering = ("-id",)
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsumerCursor)
class ConsumerCursorAdmin(ReadOnlyAdmin):
    list_display = ("consumer", "snapshot", "span_snapshot", "updated_at")

    def has_delete_permission(self, request, obj=None):
        return False
