"""Input checking and the documented shapes of the notification inbox API."""

from __future__ import annotations

from rest_framework import serializers

from reminders.selectors import DEFAULT_LIMIT, MAX_LIMIT


class NotificationListQuerySerializer(serializers.Serializer):
    unread = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="`true`: only unread; `false`: only read; absent: both.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    offset = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)


class NotificationSerializer(serializers.Serializer):
    """Documents ``reminders.representation.notification_to_dict``."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="`reminder`")
    task_id = serializers.IntegerField()
    title = serializers.CharField()
    due_date = serializers.DateTimeField(allow_null=True)
    remind_at = serializers.DateTimeField()
    late = serializers.BooleanField(help_text="Fired well after its time.")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)
    dismissed_at = serializers.DateTimeField(allow_null=True)


class NotificationPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = NotificationSerializer(many=True)
