"""Parsing the list endpoint's query string into ``TaskFilters``.

Hand-written rather than a DRF serializer per request: a serializer deep-copies its fields on
every instantiation, which cost more than the database query on the hot list path. The
serializer in ``serializers.TaskListQuerySerializer`` still documents the parameters for the
OpenAPI schema; the parameter names are read from it once, both take their choices and bounds
from the same constants in ``tasks.models``, and the patterns the schema publishes are the
ones checked here. ``parse_query`` holds the other lists' query strings to the same rules.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from functools import cache
from zoneinfo import ZoneInfo

from django.http import QueryDict
from rest_framework import serializers

from tasks.api.serializers import (
    MAX_ORDERING_TERMS,
    MAX_PRIORITY_VALUES,
    ORDERING_LIST_PATTERN,
    PRIORITY_LIST_PATTERN,
    TAG_LIST_PATTERN,
    TaskListQuerySerializer,
)
from tasks.errors import TaskValidationError
from tasks.models import (
    DEFAULT_LIMIT,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TAGS,
    PRIORITY_LABELS,
    SEARCH_MAX_LENGTH,
    STATUS_FILTERS,
    TAG_MATCH_MODES,
    TAG_MAX_LENGTH,
)
from tasks.selectors import ORDERINGS, TaskFilters
from tasks.validation import clean_timezone, parse_when

LIST_PARAMETERS = frozenset(TaskListQuerySerializer().fields)
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_LISTS = {
    "priority": (re.compile(PRIORITY_LIST_PATTERN), MAX_PRIORITY_VALUES),
    "tags": (re.compile(TAG_LIST_PATTERN), MAX_TAGS),
    "ordering": (re.compile(ORDERING_LIST_PATTERN), MAX_ORDERING_TERMS),
}
_LIST_HINTS = {
    "priority": f"{', '.join(PRIORITY_LABELS[:-1])} or {PRIORITY_LABELS[-1]}",
    "tags": f"tags of 1-{TAG_MAX_LENGTH} characters",
    "ordering": f"{', '.join(ORDERINGS)} (prefix - for descending)",
}


def _invalid(field: str, code: str, message: str) -> TaskValidationError:
    return TaskValidationError(message, field=field, code=code)


def reject_unknown(data, allowed, *, kind: str) -> None:
    """Refuse the first name in ``data`` (a body or a query string) that is not ``allowed``."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _invalid(
            unknown[0], f"unknown_{kind.replace(' ', '_')}", f"Unknown {kind}: {unknown[0]}."
        )


def _single(params: QueryDict, name: str, *, allow_blank: bool = False) -> str | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(name, "multiple_values", f"Give {name} once.")
    value = values[0]
    if "\x00" in value:
        raise _invalid(name, "invalid", f"{name} may not contain NUL characters.")
    if not allow_blank and not value.strip():
        # An empty filter is a mistake in the client, not "no filter".
        raise _invalid(name, "blank", f"{name} may not be empty; leave it out instead.")
    return value


_QUERY_BOOLEANS = frozenset({"true", "false", "1", "0"})


@cache
def _query_fields(serializer_class) -> dict[str, type[serializers.Field]]:
    """Each parameter's field class, read once per serializer (building one deep-copies its
    fields)."""
    return {name: type(field) for name, field in serializer_class().fields.items()}


def parse_query(params: QueryDict, serializer_class) -> dict:
    """Any endpoint's query string, as strictly as the list's: no unknown, repeated or empty
    parameter, integers as decimal digits and booleans as ``true``/``false``, then the
    serializer's own checks. (DRF alone reads ``limit=`` as "not given", keeps the last of
    repeated values and takes ``yes``, ``on`` and ``5.0``.)"""
    fields = _query_fields(serializer_class)
    reject_unknown(params, fields, kind="parameter")
    data = {}
    for name, field_class in fields.items():
        value = _single(params, name)
        if value is None:
            continue
        if issubclass(field_class, serializers.BooleanField):
            if value not in _QUERY_BOOLEANS:
                raise _invalid(name, "invalid", f"{name} must be true or false.")
        elif issubclass(field_class, serializers.IntegerField) and not _INTEGER.fullmatch(value):
            raise _invalid(name, "invalid", f"{name} must be an integer.")
        data[name] = value
    query = serializer_class(data=data)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _many(params: QueryDict, name: str) -> list[str]:
    pattern, max_items = _LISTS[name]
    items: list[str] = []
    for value in params.getlist(name):
        if not value.strip():
            raise _invalid(name, "blank", f"{name} may not be empty; leave it out instead.")
        if not pattern.match(value):
            raise _invalid(
                name,
                "invalid_choice" if name != "tags" else "invalid",
                f"{name} takes comma-separated {_LIST_HINTS[name]}, none of them empty.",
            )
        items.extend(part.strip() for part in value.split(","))
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
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):
        raise _invalid(name, "invalid", f"{name} must be an integer.")
    number = int(value)
    if number < low:
        raise _invalid(name, "min_value", f"{name} must be at least {low}.")
    if number > high:
        raise _invalid(name, "max_value", f"{name} must be at most {high}.")
    return number


def _datetime(params: QueryDict, name: str, tz_name: str) -> datetime | None:
    value = _single(params, name)
    if value is None:
        return None
    parsed = parse_when(value)
    if parsed is None:
        raise _invalid(
            name,
            "invalid_datetime",
            f"{name} must be an ISO 8601 date or date-time, e.g. 2026-12-01T09:00:00Z.",
        )
    if not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time())  # a bare date: the start of that day
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz_name))
    return parsed


def parse_list_params(params: QueryDict) -> tuple[TaskFilters, int, int]:
    reject_unknown(params, LIST_PARAMETERS, kind="parameter")
    q = _single(params, "q", allow_blank=True) or ""
    if len(q) > SEARCH_MAX_LENGTH:
        raise _invalid(
            "q", "max_length", f"Search text may have at most {SEARCH_MAX_LENGTH} characters."
        )
    priorities = _many(params, "priority")
    tags = _many(params, "tags")
    ordering = _many(params, "ordering")
    # clean_timezone names the field and code itself; None (not given) is UTC.
    tz_name = clean_timezone(_single(params, "timezone"))
    filters = TaskFilters(
        q=q.strip(),
        status=_choice(params, "status", STATUS_FILTERS, "all"),
        priorities=tuple(dict.fromkeys(priorities)),
        tags=tuple(tags),
        tags_mode=_choice(params, "tags_mode", TAG_MATCH_MODES, "all"),
        due_before=_datetime(params, "due_before", tz_name),
        due_after=_datetime(params, "due_after", tz_name),
        due=_choice(params, "due", DUE_WINDOWS, None),
        timezone=tz_name,
        ordering=tuple(ordering),
        highlight=_choice(params, "highlight", _QUERY_BOOLEANS, "false") in {"true", "1"},
    )
    limit = _integer(params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = _integer(params, "offset", default=0, low=0, high=MAX_OFFSET)
    return filters, limit, offset
