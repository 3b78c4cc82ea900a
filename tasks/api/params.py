"""Parsing the list endpoint's query string into ``TaskFilters``.

Hand-written rather than a DRF serializer per request: a serializer deep-copies its fields on
every instantiation, which cost more than the database query on the hot list path. The
serializer in ``serializers.TaskListQuerySerializer`` still documents the parameters for the
OpenAPI schema; the parameter names are read from it once, and both take their choices and
bounds from the same constants in ``tasks.selectors``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.http import QueryDict
from django.utils.dateparse import parse_datetime

from tasks.api.serializers import TaskListQuerySerializer
from tasks.errors import TaskValidationError
from tasks.models import MAX_TAGS, TAG_MAX_LENGTH, Priority
from tasks.selectors import (
    DEFAULT_LIMIT,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_QUERY_LENGTH,
    ORDERINGS,
    STATUSES,
    TaskFilters,
)
from tasks.validation import clean_timezone

LIST_PARAMETERS = frozenset(TaskListQuerySerializer().fields)
_PRIORITIES = frozenset(Priority.labels_list())
_ORDERINGS = frozenset([*ORDERINGS, *(f"-{name}" for name in ORDERINGS)])


def _invalid(field: str, code: str, message: str) -> TaskValidationError:
    return TaskValidationError(message, field=field, code=code)


def reject_unknown(data, allowed, *, kind: str) -> None:
    """Refuse the first name in ``data`` (a body or a query string) that is not ``allowed``."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _invalid(
            unknown[0], f"unknown_{kind.replace(' ', '_')}", f"Unknown {kind}: {unknown[0]}."
        )


def _single(params: QueryDict, name: str) -> str | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(name, "multiple_values", f"Give {name} once.")
    value = values[0]
    if "\x00" in value:
        raise _invalid(name, "invalid", f"{name} may not contain NUL characters.")
    return value


def _many(params: QueryDict, name: str, *, max_items: int) -> list[str]:
    items: list[str] = []
    for value in params.getlist(name):
        items.extend(part.strip() for part in value.split(",") if part.strip())
    if len(items) > max_items:
        raise _invalid(name, "max_length", f"At most {max_items} values for {name}.")
    return items


def _choice(params: QueryDict, name: str, choices, default: str | None) -> str | None:
    value = _single(params, name)
    if value is None:
        return default
    if value not in choices:
        raise _invalid(
            name,
            "invalid_choice",
            f'"{value}" is not a valid {name}; use one of {", ".join(sorted(choices))}.',
        )
    return value


def _integer(params: QueryDict, name: str, *, default: int, low: int, high: int) -> int:
    value = _single(params, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(name, "invalid", f"{name} must be an integer.") from None
    if number < low:
        raise _invalid(name, "min_value", f"{name} must be at least {low}.")
    if number > high:
        raise _invalid(name, "max_value", f"{name} must be at most {high}.")
    return number


def _datetime(params: QueryDict, name: str, tz_name: str):
    value = _single(params, name)
    if value is None or value == "":
        return None
    try:
        parsed = parse_datetime(value.strip().replace(" ", "+") if "T" in value else value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise _invalid(name, "invalid_datetime", f"{name} must be an ISO 8601 date-time.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz_name))
    return parsed


def parse_list_params(params: QueryDict) -> tuple[TaskFilters, int, int]:
    reject_unknown(params, LIST_PARAMETERS, kind="parameter")
    q = (_single(params, "q") or "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise _invalid(
            "q", "max_length", f"Search text may have at most {MAX_QUERY_LENGTH} characters."
        )
    priorities = _many(params, "priority", max_items=4)
    for label in priorities:
        if label not in _PRIORITIES:
            raise _invalid(
                "priority",
                "invalid_choice",
                f'"{label}" is not a priority; use low, medium, high or urgent.',
            )
    tags = _many(params, "tags", max_items=MAX_TAGS)
    for tag in tags:
        if len(tag) > TAG_MAX_LENGTH or "\x00" in tag:
            raise _invalid("tags", "invalid", f"Each tag is 1-{TAG_MAX_LENGTH} characters.")
    ordering = _many(params, "ordering", max_items=4)
    for term in ordering:
        if term not in _ORDERINGS:
            raise _invalid(
                "ordering",
                "invalid_choice",
                f'"{term}" is not an ordering; use {", ".join(ORDERINGS)} (prefix - for descending).',
            )
    tz_name = _single(params, "timezone")
    if tz_name == "":
        raise _invalid("timezone", "invalid_timezone", "timezone may not be empty.")
    # clean_timezone names the field and code itself; None (not given) is UTC.
    tz_name = clean_timezone(tz_name)
    filters = TaskFilters(
        q=q,
        status=_choice(params, "status", STATUSES, "all"),
        priorities=tuple(dict.fromkeys(priorities)),
        tags=tuple(tags),
        tags_mode=_choice(params, "tags_mode", ("all", "any"), "all"),
        due_before=_datetime(params, "due_before", tz_name),
        due_after=_datetime(params, "due_after", tz_name),
        due=_choice(params, "due", DUE_WINDOWS, None),
        timezone=tz_name,
        ordering=tuple(ordering),
    )
    limit = _integer(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = _integer(params, "offset", default=0, low=0, high=MAX_OFFSET)
    return filters, limit, offset
