"""Input checking and the documented shapes of the task API.

Responses are built by ``tasks.representation.task_to_dict`` (cheap: no serializer per row);
``TaskSerializer`` here only documents that shape for the OpenAPI schema.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tasks.models import (
    APPLY_TO_CHOICES,
    DEFAULT_LIMIT,
    DEFAULT_OCCURRENCES,
    DEFAULT_TIMEZONE,
    DESCRIPTION_MAX_LENGTH,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OCCURRENCES,
    MAX_OFFSET,
    MAX_TAGS,
    PRIORITY_LABELS,
    RECURRENCE_MAX_LENGTH,
    REPEAT_FROM_CHOICES,
    SEARCH_MAX_LENGTH,
    STATUS_FILTERS,
    TAG_MATCH_MODES,
    TAG_MAX_LENGTH,
    TIMEZONE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    WHEN_TEXT_MAX_LENGTH,
)
from tasks.recurrence_rules import MAX_COUNT, MAX_INTERVAL, TIME_ZONES, WEEKDAYS
from tasks.selectors import ORDERINGS
from tasks.validation import (
    ANY_DATE_PATTERN,
    DUE_PATTERN,
    RECURRENCE_TEXT_PATTERN,
    REMINDER_PATTERN,
    RRULE_PATTERN,
    RULE_FREQUENCIES,
    WHEN_TEXT,
    spell_blanks,
)

# Text with something in it besides blanks (titles, tags), and any text PostgreSQL can store.
CONTENT_PATTERN = spell_blanks(r"^[^\x00]*[^\s\x00][^\x00]*$")
STORABLE_PATTERN = r"^[^\x00]*$"


class StrictCharField(serializers.CharField):
    """Text only: DRF's CharField turns 0, 1.5 and true into "0", "1.5" and "True". The
    length is that of the text as sent, before any trimming."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField also takes "3", 3.0 and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": TITLE_MAX_LENGTH,
        "pattern": CONTENT_PATTERN,
        "description": "Blanks around it are trimmed; it may not be blank.",
    }
)
class TitleField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TITLE_MAX_LENGTH)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": DESCRIPTION_MAX_LENGTH,
        "pattern": STORABLE_PATTERN,
    }
)
class DescriptionField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", DESCRIPTION_MAX_LENGTH)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": TAG_MAX_LENGTH,
        "pattern": CONTENT_PATTERN,
    }
)
class TagField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TAG_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": WHEN_TEXT_MAX_LENGTH,
        "pattern": DUE_PATTERN,
        "description": "ISO 8601: `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` (`T` or a "
        "space) with `Z`, `+HH:MM`, `+HHMM`, `+HH` or no offset; years 1900-9000. A time "
        "without offset is wall-clock time in the task's zone; a bare date means the end of "
        "that day. Empty or null: no due date.",
        "example": "2026-12-01T09:00:00Z",
    }
)
class DateTimeText(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", WHEN_TEXT_MAX_LENGTH)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": WHEN_TEXT_MAX_LENGTH,
        "pattern": REMINDER_PATTERN,
        "description": "Before the due date (`30m`, `1h`, `2d`, `1w`; minutes, hours, days or "
        "weeks, at most 52 weeks) or an absolute time written as `due_date` is. Empty, `none` "
        "or null: no reminder.",
        "example": "1h",
    }
)
class ReminderText(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("max_length", WHEN_TEXT_MAX_LENGTH)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "oneOf": [
            {
                "type": "string",
                "maxLength": RECURRENCE_MAX_LENGTH,
                "pattern": RECURRENCE_TEXT_PATTERN,
                "description": "`none`, `daily`, `weekly`, `monthly`, `yearly`, a phrase such as "
                "`every 2 weeks`, or an RRULE such as `FREQ=MONTHLY;BYDAY=-1FR` (docs/"
                "recurrence.md).",
            },
            {
                "type": "object",
                "properties": {
                    "freq": {
                        "type": "string",
                        "enum": list(RULE_FREQUENCIES),
                        "nullable": True,
                    },
                    "interval": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_INTERVAL,
                        "nullable": True,
                    },
                    "weekdays": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(WEEKDAYS)},
                        "nullable": True,
                    },
                    "month_day": {
                        "type": "integer",
                        "minimum": -1,
                        "maximum": 31,
                        "not": {"enum": [0]},
                        "nullable": True,
                        "description": "1-31, or -1 for the last day of the month.",
                    },
                    "until": {"type": "string", "pattern": ANY_DATE_PATTERN, "nullable": True},
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_COUNT,
                        "nullable": True,
                    },
                    "rrule": {
                        "type": "string",
                        "maxLength": RECURRENCE_MAX_LENGTH,
                        "pattern": RRULE_PATTERN,
                        "nullable": True,
                    },
                },
                "anyOf": [
                    {"required": ["freq"], "properties": {"freq": {"type": "string"}}},
                    {"required": ["rrule"], "properties": {"rrule": {"type": "string"}}},
                ],
                "additionalProperties": False,
                "description": "null means a key was not given.",
            },
        ],
        "nullable": True,
        "description": "A rule the pattern allows may still be refused when it contradicts "
        "itself (a part given twice, `COUNT` with `UNTIL`, an ordinal such as `2MO` with "
        "`DAILY` or `WEEKLY`, `BYMONTHDAY` with `WEEKLY`, parts that never match a date, keys "
        "that do not fit `freq`): 400 `invalid_recurrence`; or when `until` is before the "
        "first due date: 400 `until_before_start`.",
    }
)
class RecurrenceField(serializers.JSONField):
    pass


@extend_schema_field(
    {"type": "string", "enum": list(TIME_ZONES), "description": "IANA time zone name."}
)
class TimeZoneField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TIMEZONE_MAX_LENGTH)
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF would also take 0, "yes", "on" ...)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class TaskWriteSerializer(serializers.Serializer):
    title = TitleField()
    description = DescriptionField(required=False)
    priority = serializers.ChoiceField(choices=PRIORITY_LABELS, required=False)
    tags = serializers.ListField(
        child=TagField(),
        max_length=MAX_TAGS,
        required=False,
        allow_null=True,
    )
    due_date = DateTimeText(required=False)
    reminder_time = ReminderText(required=False)
    recurrence_pattern = RecurrenceField(
        required=False,
        allow_null=True,
        help_text="Only null or `none` removes a task's recurrence; left out, it is kept.",
    )
    repeat_from = serializers.ChoiceField(
        choices=REPEAT_FROM_CHOICES,
        required=False,
        help_text="A series' next due time counts from the due time (`due`, the default) or "
        "from when an occurrence was completed or skipped (`completion`), at the due time of "
        "day. Left out, it is kept.",
    )
    timezone = TimeZoneField(required=False)
    completed = StrictBooleanField(required=False)
    version = StrictIntegerField(
        min_value=1,
        required=False,
        write_only=True,
        help_text="Expected version (optimistic concurrency).",
    )


class TaskReplaceSerializer(TaskWriteSerializer):
    apply_to = serializers.ChoiceField(
        choices=APPLY_TO_CHOICES,
        required=False,
        default="instance",
        write_only=True,
        help_text="A new `due_date` of a recurring task moves this occurrence alone "
        "(`instance`) or the series from here on (`series`). A new rule always applies to the "
        "series.",
    )


class TaskPatchSerializer(TaskReplaceSerializer):
    title = TitleField(required=False)


class TaskSerializer(serializers.Serializer):
    """A task as the API returns it."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    completed = serializers.BooleanField()
    completed_at = serializers.DateTimeField(allow_null=True)
    priority = serializers.ChoiceField(choices=PRIORITY_LABELS)
    tags = serializers.ListField(child=serializers.CharField())
    due_date = serializers.DateTimeField(allow_null=True)
    reminder_time = serializers.CharField(
        allow_null=True, help_text="`1h`-style offset before due, or the absolute time."
    )
    remind_at = serializers.DateTimeField(allow_null=True)
    recurrence_pattern = serializers.CharField()
    series_id = serializers.UUIDField(allow_null=True)
    series_index = serializers.IntegerField()
    repeat_from = serializers.ChoiceField(choices=REPEAT_FROM_CHOICES)
    skipped_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when this occurrence of a series was skipped."
    )
    deleted_at = serializers.DateTimeField(
        allow_null=True, help_text="Set while the task is in the trash."
    )
    timezone = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField()


class TaskPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Total matching tasks.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = TaskSerializer(many=True)
    sequence = serializers.IntegerField(
        help_text="The caller's event sequence this page is consistent with (also the "
        "`X-Sequence` header): `GET /api/changes/?since=<sequence>` gives every later change once."
    )


class TrashedTaskSerializer(TaskSerializer):
    purge_after = serializers.DateTimeField(
        help_text="When the retention sweep deletes it for good."
    )


class TrashPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Tasks in the trash.")
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = TrashedTaskSerializer(many=True)


class TrashQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, required=False, default=DEFAULT_LIMIT
    )
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False, default=0)


class OccurrencesQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(
        min_value=1, max_value=MAX_OCCURRENCES, required=False, default=DEFAULT_OCCURRENCES
    )


class OccurrenceSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Its place in the series (0 is the first).")
    due = serializers.CharField(help_text="In the task's time zone, RFC 3339 with its offset.")
    due_utc = serializers.DateTimeField(help_text="The same instant in UTC.")
    task_id = serializers.IntegerField(
        allow_null=True, help_text="The instance that exists for it, or null: still to come."
    )


class OccurrencesSerializer(serializers.Serializer):
    task_id = serializers.IntegerField()
    timezone = serializers.CharField()
    repeat_from = serializers.ChoiceField(choices=REPEAT_FROM_CHOICES)
    results = OccurrenceSerializer(many=True)


def _list_pattern(item: str) -> str:
    """One query value: ``item``s separated by commas, blanks around each ignored."""
    return spell_blanks(rf"^\s*{item}(\s*,\s*{item})*\s*$")


def _choices(values) -> str:
    return "(" + "|".join(values) + ")"


MAX_PRIORITY_VALUES = len(PRIORITY_LABELS)
MAX_ORDERING_TERMS = 4
PRIORITY_LIST_PATTERN = _list_pattern(_choices(PRIORITY_LABELS))
ORDERING_LIST_PATTERN = _list_pattern("-?" + _choices(ORDERINGS))
# A tag in a filter: 1-TAG_MAX_LENGTH characters once trimmed, no comma (commas separate tags).
TAG_LIST_PATTERN = _list_pattern(rf"[^\s,\x00]([^,\x00]{{0,{TAG_MAX_LENGTH - 2}}}[^\s,\x00])?")
WHEN_PATTERN = f"^{WHEN_TEXT}$"


def _multi_value_schema(item_pattern: str, max_values: int, what: str) -> dict:
    return {
        "type": "array",
        "items": {"type": "string", "pattern": item_pattern},
        "maxItems": max_values,
        "description": f"Repeat the parameter or separate {what} with commas; at most "
        f"{max_values} in all (more is a 400 `max_length`). An empty value is a 400.",
    }


class MultiValueField(serializers.ListField):
    """A query parameter given several times or as a comma-separated list (documentation
    only: ``tasks.api.params`` parses the query string)."""


@extend_schema_field(_multi_value_schema(PRIORITY_LIST_PATTERN, MAX_PRIORITY_VALUES, "priorities"))
class PriorityListField(MultiValueField):
    pass


@extend_schema_field(_multi_value_schema(TAG_LIST_PATTERN, MAX_TAGS, "tags"))
class TagListField(MultiValueField):
    pass


@extend_schema_field(_multi_value_schema(ORDERING_LIST_PATTERN, MAX_ORDERING_TERMS, "terms"))
class OrderingListField(MultiValueField):
    pass


@extend_schema_field(
    {
        "type": "string",
        "pattern": WHEN_PATTERN,
        "description": "A date-time written as `due_date` is (a time without offset is in "
        "`timezone`); a bare date is the start of that day.",
        "example": "2026-12-01T09:00:00Z",
    }
)
class WhenField(StrictCharField):
    pass


@extend_schema_field(
    {
        "type": "string",
        "maxLength": SEARCH_MAX_LENGTH,
        "pattern": STORABLE_PATTERN,
        "description": "Search text; empty means no search.",
    }
)
class SearchTextField(StrictCharField):
    pass


class TaskListQuerySerializer(serializers.Serializer):
    """The list parameters for the OpenAPI schema; ``tasks.api.params`` parses requests. A
    parameter given with an empty value (``due_before=``) is a 400, except ``q``."""

    q = SearchTextField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=STATUS_FILTERS, required=False, default="all")
    priority = PriorityListField(required=False)
    tags = TagListField(required=False)
    tags_mode = serializers.ChoiceField(choices=TAG_MATCH_MODES, required=False, default="all")
    due_before = WhenField(required=False)
    due_after = WhenField(required=False)
    due = serializers.ChoiceField(choices=DUE_WINDOWS, required=False)
    timezone = TimeZoneField(required=False, default=DEFAULT_TIMEZONE)
    ordering = OrderingListField(required=False)
    highlight = serializers.BooleanField(
        required=False,
        default=False,
        help_text="With `q`: each result gets `highlight.title` and `highlight.description`, "
        "HTML-escaped, the matched words in `<mark>`.",
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, required=False, default=DEFAULT_LIMIT
    )
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False, default=0)
