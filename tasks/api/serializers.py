"""Input checking and the documented shapes of the task API.

Responses are built by ``tasks.representation.task_to_dict`` (cheap: no serializer per row);
``TaskSerializer`` here only documents that shape for the OpenAPI schema.
"""

from __future__ import annotations

import zoneinfo

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tasks.models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    RECURRENCE_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
)
from tasks.selectors import (
    DEFAULT_LIMIT,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_QUERY_LENGTH,
    ORDERINGS,
    STATUSES,
)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "maxLength": 0, "description": "Empty: no due date."},
        ],
        "nullable": True,
        "description": "ISO 8601. A time without offset is wall-clock time in the task's zone; "
        "a bare date means the end of that day.",
    }
)
class DateTimeText(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": 64,
        "description": "Before the due date (`30m`, `1h`, `2d`, `1w`) or an absolute ISO 8601 time.",
        "example": "1h",
    }
)
class ReminderText(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "oneOf": [
            {
                "type": "string",
                "maxLength": RECURRENCE_MAX_LENGTH,
                "description": "`none`, `daily`, `weekly`, `monthly`, `yearly`, a phrase such as "
                "`every 2 weeks`, or an RRULE such as `FREQ=MONTHLY;BYDAY=-1FR`.",
            },
            {
                "type": "object",
                "properties": {
                    "freq": {"type": "string", "enum": ["daily", "weekly", "monthly", "yearly"]},
                    "interval": {"type": "integer", "minimum": 1, "maximum": 999},
                    "weekdays": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                        },
                    },
                    "month_day": {"type": "integer", "minimum": -1, "maximum": 31},
                    "until": {"type": "string", "format": "date"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
                "required": ["freq"],
                "additionalProperties": False,
            },
        ],
        "nullable": True,
    }
)
class RecurrenceField(serializers.JSONField):
    pass


TIME_ZONES = sorted(zone for zone in zoneinfo.available_timezones() if zone != "localtime")


@extend_schema_field({"type": "string", "enum": TIME_ZONES, "description": "IANA time zone name."})
class TimeZoneField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF would also take 0, "yes", "on" ...)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class TaskWriteSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, trim_whitespace=True)
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX_LENGTH,
        allow_blank=True,
        allow_null=True,
        required=False,
        trim_whitespace=False,
    )
    priority = serializers.ChoiceField(choices=Priority.labels_list(), required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=TAG_MAX_LENGTH, trim_whitespace=False),
        max_length=MAX_TAGS,
        required=False,
        allow_null=True,
    )
    due_date = DateTimeText(required=False)
    reminder_time = ReminderText(required=False)
    recurrence_pattern = RecurrenceField(required=False, allow_null=True)
    timezone = TimeZoneField(required=False)
    completed = StrictBooleanField(required=False)
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        write_only=True,
        help_text="Expected version (optimistic concurrency).",
    )


class TaskPatchSerializer(TaskWriteSerializer):
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, trim_whitespace=True, required=False)


class TaskSerializer(serializers.Serializer):
    """A task as the API returns it."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    completed = serializers.BooleanField()
    completed_at = serializers.DateTimeField(allow_null=True)
    priority = serializers.ChoiceField(choices=Priority.labels_list())
    tags = serializers.ListField(child=serializers.CharField())
    due_date = serializers.DateTimeField(allow_null=True)
    reminder_time = serializers.CharField(
        allow_null=True, help_text="`1h`-style offset before due, or the absolute time."
    )
    remind_at = serializers.DateTimeField(allow_null=True)
    recurrence_pattern = serializers.CharField()
    series_id = serializers.UUIDField(allow_null=True)
    series_index = serializers.IntegerField()
    timezone = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField()


class TaskPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Total matching tasks.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = TaskSerializer(many=True)


class MultiValueField(serializers.ListField):
    """A query parameter given several times or as a comma-separated list."""

    def get_value(self, dictionary):
        values = dictionary.getlist(self.field_name) if hasattr(dictionary, "getlist") else []
        if not values:
            return serializers.empty
        items: list[str] = []
        for value in values:
            items.extend(part.strip() for part in value.split(",") if part.strip())
        return items


class TaskListQuerySerializer(serializers.Serializer):
    """The list parameters for the OpenAPI schema; ``tasks.api.params`` parses requests."""

    q = serializers.CharField(
        max_length=MAX_QUERY_LENGTH, required=False, allow_blank=True, trim_whitespace=True
    )
    status = serializers.ChoiceField(choices=STATUSES, required=False, default="all")
    priority = MultiValueField(
        child=serializers.ChoiceField(choices=Priority.labels_list()), required=False, max_length=4
    )
    tags = MultiValueField(
        child=serializers.CharField(max_length=TAG_MAX_LENGTH), required=False, max_length=MAX_TAGS
    )
    tags_mode = serializers.ChoiceField(choices=["all", "any"], required=False, default="all")
    due_before = serializers.DateTimeField(required=False)
    due_after = serializers.DateTimeField(required=False)
    due = serializers.ChoiceField(choices=DUE_WINDOWS, required=False)
    timezone = TimeZoneField(required=False, default="UTC")
    ordering = MultiValueField(
        child=serializers.ChoiceField(choices=[*ORDERINGS, *(f"-{name}" for name in ORDERINGS)]),
        required=False,
        max_length=4,
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, required=False, default=DEFAULT_LIMIT
    )
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False, default=0)
