"""Turning what a client sent into clean field values, with one error per bad field.

Shared by every surface through the services, so REST and MCP refuse the same things with the
same codes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone as dj_timezone
from django.utils.dateparse import parse_date, parse_datetime

from recurrence.rules import RecurrenceError, Rule, parse_rule, rule_to_text, validate_timezone
from tasks.errors import TaskValidationError
from tasks.models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    RECURRENCE_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
)

_OFFSET = re.compile(
    r"^\s*(\d{1,4})\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?)\s*$", re.I
)
_OFFSET_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_REMINDER_OFFSET = timedelta(weeks=52)


def clean_title(value: object) -> str:
    if not isinstance(value, str):
        raise TaskValidationError("Title must be text.", field="title", code="invalid_type")
    title = value.strip()
    if not title:
        raise TaskValidationError("Title may not be blank.", field="title", code="blank")
    if len(title) > TITLE_MAX_LENGTH:
        raise TaskValidationError(
            f"Title may have at most {TITLE_MAX_LENGTH} characters.",
            field="title",
            code="max_length",
        )
    if "\x00" in title:
        raise TaskValidationError(
            "Title may not contain NUL characters.", field="title", code="invalid"
        )
    return title


def clean_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TaskValidationError(
            "Description must be text.", field="description", code="invalid_type"
        )
    if len(value) > DESCRIPTION_MAX_LENGTH:
        raise TaskValidationError(
            f"Description may have at most {DESCRIPTION_MAX_LENGTH} characters.",
            field="description",
            code="max_length",
        )
    if "\x00" in value:
        raise TaskValidationError(
            "Description may not contain NUL characters.", field="description", code="invalid"
        )
    return value.strip()


def clean_priority(value: object) -> int:
    if isinstance(value, str) and value.strip().lower() in Priority.labels_list():
        return Priority.from_label(value.strip().lower()).value
    raise TaskValidationError(
        f"Priority must be one of {', '.join(Priority.labels_list())}.",
        field="priority",
        code="invalid_choice",
    )


def clean_tags(value: object) -> list[str]:
    """Trimmed, unique regardless of case (the first spelling wins), at most MAX_TAGS."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise TaskValidationError(
            "Tags must be a list of strings.", field="tags", code="invalid_type"
        )
    seen: set[str] = set()
    tags: list[str] = []
    for raw in value:
        if not isinstance(raw, str):
            raise TaskValidationError(
                "Each tag must be a string.", field="tags", code="invalid_type"
            )
        tag = " ".join(raw.split())
        if not tag:
            raise TaskValidationError("Tags may not be blank.", field="tags", code="blank")
        if len(tag) > TAG_MAX_LENGTH:
            raise TaskValidationError(
                f"Each tag may have at most {TAG_MAX_LENGTH} characters.",
                field="tags",
                code="max_length",
            )
        if "\x00" in tag:
            raise TaskValidationError(
                "Tags may not contain NUL characters.", field="tags", code="invalid"
            )
        key = tag.casefold()
        if key not in seen:
            seen.add(key)
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise TaskValidationError(
            f"At most {MAX_TAGS} tags are allowed.", field="tags", code="too_many"
        )
    return tags


def clean_timezone(value: object) -> str:
    if value is None or value == "":
        return "UTC"
    if not isinstance(value, str):
        raise TaskValidationError(
            "Time zone must be an IANA name.", field="timezone", code="invalid_type"
        )
    try:
        return validate_timezone(value.strip())
    except RecurrenceError as exc:
        raise TaskValidationError(exc.message, field="timezone", code="invalid_timezone") from None


def clean_due(value: object, *, tz_name: str, field: str = "due_date") -> datetime | None:
    """An aware datetime. A naive one is wall-clock time in the task's zone; a bare date means
    the end of that day there."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(23, 59, 59))
    elif isinstance(value, str):
        text = value.strip()
        parsed = None
        try:
            # A bare date first: parse_datetime would read it as midnight.
            day = parse_date(text) if len(text) == 10 else None
            if day is not None:
                parsed = datetime.combine(day, time(23, 59, 59))
            else:
                parsed = parse_datetime(text.replace(" ", "T", 1))
        except ValueError:
            parsed = None
        if parsed is None:
            raise TaskValidationError(
                "Use an ISO 8601 date or date-time, e.g. 2026-12-01T09:00:00Z.",
                field=field,
                code="invalid_datetime",
            )
    else:
        raise TaskValidationError(
            "Expected an ISO 8601 date-time.", field=field, code="invalid_type"
        )
    if dj_timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=ZoneInfo(tz_name))
    if not (1900 <= parsed.year <= 9000):
        raise TaskValidationError("Date is out of range.", field=field, code="out_of_range")
    return parsed.astimezone(UTC)


def clean_reminder(
    value: object, *, due_at: datetime | None, tz_name: str
) -> tuple[timedelta | None, datetime | None]:
    """``(offset, remind_at)`` from "1h"/"2d"/"1w"/"30m" before due, or an absolute time."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none"}):
        return None, None
    if isinstance(value, timedelta):
        offset = value
    elif isinstance(value, str) and (match := _OFFSET.match(value)):
        amount, unit = int(match.group(1)), match.group(2)[0].lower()
        offset = timedelta(**{_OFFSET_UNITS[unit]: amount})
    else:
        remind_at = clean_due(value, tz_name=tz_name, field="reminder_time")
        return None, remind_at
    if offset > MAX_REMINDER_OFFSET:
        raise TaskValidationError(
            "A reminder may be at most 52 weeks before the due date.",
            field="reminder_time",
            code="out_of_range",
        )
    if due_at is None:
        raise TaskValidationError(
            "A reminder relative to the due date needs a due date.",
            field="reminder_time",
            code="due_date_required",
        )
    return offset, due_at - offset


def clean_recurrence(value: object) -> Rule | None:
    if isinstance(value, str) and len(value) > RECURRENCE_MAX_LENGTH:
        raise TaskValidationError(
            "Recurrence rule is too long.", field="recurrence_pattern", code="max_length"
        )
    try:
        return parse_rule(value)  # type: ignore[arg-type]
    except RecurrenceError as exc:
        raise TaskValidationError(exc.message, field="recurrence_pattern", code=exc.code) from None


def recurrence_text(rule: Rule | None) -> str:
    return rule_to_text(rule)


def require_due_for_recurrence(rule_text: str, due_at: datetime | None) -> None:
    if rule_text != "none" and due_at is None:
        raise TaskValidationError(
            "A recurring task needs a due date.", field="due_date", code="due_date_required"
        )


def format_offset(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def check_fields(fields: dict) -> None:
    """Validate a whole set of representation fields without writing (forms that show errors
    before calling a service). The services run the same checks again when they write."""
    tz_name = clean_timezone(fields.get("timezone"))
    if "title" in fields:
        clean_title(fields["title"])
    clean_description(fields.get("description"))
    if "priority" in fields:
        clean_priority(fields["priority"])
    clean_tags(fields.get("tags"))
    due_at = clean_due(fields.get("due_date"), tz_name=tz_name)
    clean_reminder(fields.get("reminder_time"), due_at=due_at, tz_name=tz_name)
    rule = clean_recurrence(fields.get("recurrence_pattern"))
    require_due_for_recurrence(recurrence_text(rule), due_at)
