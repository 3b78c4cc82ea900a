from django.contrib import admin

from core.admin import ReadOnlyAdmin
from idempotency.models import IdempotencyKey


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    """Read-only: keys are written with the requests they protect and expire on their own."""

    list_display = ("user_id", "key", "method", "path", "status", "created_at")
    list_filter = ("method", "status")
    search_fields = ("user_id", "key")
    ordering = ("-created_at",)
    exclude = ("body",)
