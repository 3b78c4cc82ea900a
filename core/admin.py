"""What the apps' admin pages share."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """A page of rows the system writes (events, keys, reminders): shown, never added or
    changed by hand. Deleting stays each page's own choice."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
