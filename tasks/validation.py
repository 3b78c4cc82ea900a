"""Turning what a client sent into clean field values, with one error per bad field.

Shared by every surface through the services, so REST and MCP refuse the same things with the
same codes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone as dj_timezone

from tasks.errors import TaskValidationError
from tasks.models import (
    DEFAULT_TIMEZONE,
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    RECURRENCE_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    RepeatFrom,
)
from tasks.recurrence_rules import (
    FREQUENCIES,
    WEEKDAYS,
    RecurrenceError,
    Rule,
    is_time_zone,
    parse_rule,
    rule_to_text,
)

MAX_REMINDER_OFFSET = timedelta(weeks=52)
FIRST_YEAR, LAST_YEAR = 1900, 9000


# --- the text forms the API accepts ---------------------------------------------------------
# Each is a regular expression in the dialect JSON Schema and Python share (explicit character
# classes, no flags, no named groups), so the OpenAPI schema publishes exactly what is checked.


# What Python's str.strip() and str.split() take for blanks; JavaScript's \s is another set.
_BLANK_CHARS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def spell_blanks(pattern: str) -> str:
    """``pattern`` with ``\\s`` spelled out as those characters, so that it means the same in
    every regex dialect, as the server strips."""
    pattern = pattern.replace("[^\\s", "[^" + _BLANK_CHARS).replace("[\\s", "[" + _BLANK_CHARS)
    return pattern.replace("\\s", f"[{_BLANK_CHARS}]")


def _ci(word: str) -> str:
    """``word`` in any letter case, without an inline flag (JSON Schema has none)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _words(*words: str) -> str:
    return "(" + "|".join(r"\s+".join(_ci(part) for part in w.split()) for w in words) + ")"


_YEAR = "(19[0-9]{2}|[2-8][0-9]{3}|9000)"
_LEAP_YEAR = "((19|[2-8][0-9])(0[48]|[2468][048]|[13579][26])|([2468][048]|[357][26])00)"


def _month_day(separator: str) -> str:
    """Month and day of a real date (February 29 aside), ``separator`` between them."""
    return (
        f"((0[13578]|1[02]){separator}(0[1-9]|[12][0-9]|3[01])"
        f"|(0[469]|11){separator}(0[1-9]|[12][0-9]|30)"
        f"|02{separator}(0[1-9]|1[0-9]|2[0-8]))"
    )


_MONTH_DAY = _month_day("-")
_DATE = f"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?"
_UTC_OFFSET = "(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
DATE_PATTERN = f"^{_DATE}$"
DATETIME_PATTERN = f"^{_DATE}[T ]{_TIME}{_UTC_OFFSET}?$"
# A date or a date-time, surrounding blanks ignored: due dates and absolute reminders.
WHEN_TEXT = spell_blanks(rf"\s*({_DATE}|{_DATE}[T ]{_TIME}{_UTC_OFFSET}?)\s*")

# Up to four digits and at most 52 weeks: minutes (9999 at most) always fit.
_OFFSET_AMOUNTS = {
    "m": ("[0-9]{1,4}", ("m", "min", "mins", "minute", "minutes")),
    "h": (
        "([0-9]{1,3}|[0-7][0-9]{3}|8[0-6][0-9]{2}|87[0-2][0-9]|873[0-6])",
        ("h", "hr", "hrs", "hour", "hours"),
    ),
    "d": ("([0-9]{1,2}|0?([0-2][0-9]{2}|3[0-5][0-9]|36[0-4]))", ("d", "day", "days")),
    "w": ("([0-9]|0{0,2}([0-4][0-9]|5[0-2]))", ("w", "week", "weeks")),
}
OFFSET_TEXT = (
    r"\s*("
    + "|".join(f"{amount}\\s*{_words(*units)}" for amount, units in _OFFSET_AMOUNTS.values())
    + r")\s*"
)
_NO_REMINDER = rf"\s*({_ci('none')})?\s*"
REMINDER_PATTERN = spell_blanks(f"^({_NO_REMINDER}|{OFFSET_TEXT}|{WHEN_TEXT})$")
DUE_PATTERN = f"^({WHEN_TEXT}|)$"


def _rrule_list(item: str) -> str:
    return rf"{item}(\s*,\s*{item})*"


_DAY_CODES = "(" + "|".join(_ci(code) for code in ("MO", "TU", "WE", "TH", "FR", "SA", "SU")) + ")"
_UNTIL_YEAR = "([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_UNTIL_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)"
_UNTIL_DATE = f"({_UNTIL_YEAR}{_month_day('')}|{_UNTIL_LEAP_YEAR}0229)"
_RRULE_VALUES = {
    "INTERVAL": "0*[1-9][0-9]{0,2}",
    "COUNT": "0*([1-9][0-9]{0,3}|10000)",
    "UNTIL": f"{_UNTIL_DATE}(T([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]Z?)?",
    "BYMONTH": _rrule_list(r"\+?(0?[1-9]|1[0-2])"),
    "BYMONTHDAY": _rrule_list("[+-]?(0?[1-9]|[12][0-9]|3[01])"),
    "BYDAY": _rrule_list(f"([+-]?(0?[1-9]|[1-4][0-9]|5[0-3]))?{_DAY_CODES}"),
    "WKST": _ci("MO"),
}
_FREQ_PART = (
    _ci("FREQ")
    + r"\s*=\s*"
    + _words(*(f.upper() for f in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")))
)
_OTHER_PART = (
    "(" + "|".join(f"{_ci(name)}\\s*=\\s*({value})" for name, value in _RRULE_VALUES.items()) + ")"
)
_SEPARATOR = r"\s*;[\s;]*"
RRULE_TEXT = (
    rf"\s*({_ci('RRULE:')})?[\s;]*({_OTHER_PART}{_SEPARATOR})*{_FREQ_PART}"
    rf"({_SEPARATOR}{_OTHER_PART})*[\s;]*"
)
_DAY_NAMES = _words(
    *WEEKDAYS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
)
_PHRASES = (
    _words("none", *FREQUENCIES, "weekdays", "every weekday"),
    rf"({_ci('every')}\s+)?{_words('last day of')}\s+({_ci('the')}\s+)?{_ci('month')}",
    rf"{_ci('every')}\s+{_words('day', 'week', 'month', 'year')}",
    rf"{_ci('every')}\s+0*[1-9][0-9]{{0,2}}\s+{_words('day', 'week', 'month', 'year')}({_ci('s')})?",
    rf"{_ci('every')}\s+{_DAY_NAMES}((\s*,\s*{_ci('and')}\s+|\s*,\s*|\s+{_ci('and')}\s+){_DAY_NAMES})*",
)
RECURRENCE_TEXT_PATTERN = spell_blanks(r"^(\s*|\s*(" + "|".join(_PHRASES) + rf")\s*|{RRULE_TEXT})$")
RRULE_PATTERN = spell_blanks(f"^{RRULE_TEXT}$")
_RECURRENCE_TEXT = re.compile(RECURRENCE_TEXT_PATTERN)
_RRULE = re.compile(RRULE_PATTERN)
# Any amount of any unit: the bound is checked after, with its own message.
_LOOSE_OFFSET = re.compile(
    r"^\s*([0-9]{1,4})\s*"
    + _words(*(unit for _, units in _OFFSET_AMOUNTS.values() for unit in units))
    + r"\s*$"
)
_OFFSET_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ISO_DATE = re.compile(DATE_PATTERN)
_ISO_DATETIME = re.compile(DATETIME_PATTERN)
ANY_DATE_PATTERN = f"^({_UNTIL_YEAR}-{_MONTH_DAY}|{_UNTIL_LEAP_YEAR}-02-29)$"
_ANY_DATE = re.compile(ANY_DATE_PATTERN)
RULE_FREQUENCIES = ("none", *FREQUENCIES)


def parse_when(text: str) -> datetime | date | None:
    """A date (``YYYY-MM-DD``) or a date-time (``YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|+HH[:MM]]``,
    ``T`` or a space), or None when ``text`` is neither."""
    text = text.strip()
    if _ISO_DATE.match(text):
        return date.fromisoformat(text)
    if not _ISO_DATETIME.match(text):
        return None
    return datetime.fromisoformat(text.replace(" ", "T", 1))


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
        return DEFAULT_TIMEZONE
    if not isinstance(value, str):
        raise TaskValidationError(
            "Time zone must be an IANA name.", field="timezone", code="invalid_type"
        )
    if not is_time_zone(value):
        shown = value if len(value) <= 60 else value[:60] + "..."
        raise TaskValidationError(
            f"Unknown time zone {shown!r}: use an IANA name such as 'Europe/London'.",
            field="timezone",
            code="invalid_timezone",
        )
    return value


def clean_due(value: object, *, tz_name: str, field: str = "due_date") -> datetime | None:
    """An aware datetime. A naive one is wall-clock time in the task's zone; a bare date means
    the end of that day there."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        when = parse_when(value)
        if when is None:
            raise TaskValidationError(
                "Use an ISO 8601 date or date-time, e.g. 2026-12-01T09:00:00Z.",
                field=field,
                code="invalid_datetime",
            )
        value = when
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(23, 59, 59))
    else:
        raise TaskValidationError(
            "Expected an ISO 8601 date-time.", field=field, code="invalid_type"
        )
    if dj_timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=ZoneInfo(tz_name))
    if not (FIRST_YEAR <= parsed.year <= LAST_YEAR):
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
    elif isinstance(value, str) and (match := _LOOSE_OFFSET.match(value)):
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
        if isinstance(value, dict):
            _check_recurrence_object(value)
        rule = parse_rule(value)  # type: ignore[arg-type]
    except RecurrenceError as exc:
        raise TaskValidationError(exc.message, field="recurrence_pattern", code=exc.code) from None
    # The parser is lenient about some spellings (non-ASCII look-alikes among them); the API
    # takes exactly the documented forms, which the OpenAPI schema publishes as a pattern.
    if isinstance(value, str) and not _RECURRENCE_TEXT.match(value):
        raise TaskValidationError(
            "Write the rule as none, daily, weekly, monthly, yearly, a phrase such as "
            "'every 2 weeks', or an RRULE such as FREQ=MONTHLY;BYDAY=-1FR.",
            field="recurrence_pattern",
            code="invalid_recurrence",
        )
    return rule


def _check_recurrence_object(value: dict) -> None:
    """The object form's values exactly as documented (the parser would also take other
    spellings, which the schema cannot describe)."""
    freq, weekdays = value.get("freq"), value.get("weekdays")
    until, rrule = value.get("until"), value.get("rrule")
    if freq is not None and freq not in RULE_FREQUENCIES:
        raise RecurrenceError(f"freq must be one of {', '.join(RULE_FREQUENCIES)}")
    if weekdays is not None and (
        not isinstance(weekdays, list) or any(day not in WEEKDAYS for day in weekdays)
    ):
        raise RecurrenceError(f"weekdays must be a list of {', '.join(WEEKDAYS)}")
    if until is not None and not (isinstance(until, str) and _ANY_DATE.match(until)):
        raise RecurrenceError("until must be a date (YYYY-MM-DD)")
    if rrule is not None and not (isinstance(rrule, str) and _RRULE.match(rrule)):
        raise RecurrenceError("rrule must be RRULE text such as FREQ=MONTHLY;BYDAY=-1FR")


def clean_repeat_from(value: object) -> str:
    """``due`` (the default: the rule's own calendar) or ``completion``."""
    if value is None:
        return RepeatFrom.DUE
    if isinstance(value, str) and value in RepeatFrom.values:
        return value
    raise TaskValidationError(
        f"repeat_from must be one of {', '.join(RepeatFrom.values)}.",
        field="repeat_from",
        code="invalid_choice",
    )


def check_series_end(rule_text: str, *, anchor: datetime | None, tz_name: str) -> None:
    """A series whose ``until`` is before its first due date would end before it starts."""
    if rule_text == "none" or anchor is None:
        return
    try:
        rule = parse_rule(rule_text)
    except RecurrenceError:
        return  # stored before a fix; the recurrence consumer ends such a series
    if rule is None or rule.until is None:
        return
    first = anchor.astimezone(ZoneInfo(tz_name)).date()
    if rule.until < first:
        raise TaskValidationError(
            f"The rule ends on {rule.until.isoformat()} (UNTIL), before the series' first due "
            f"date, {first.isoformat()}.",
            field="recurrence_pattern",
            code="until_before_start",
        )


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
    clean_repeat_from(fields.get("repeat_from"))
    # check_series_end needs the series' anchor, which only the service knows.
    require_due_for_recurrence(recurrence_text(rule), due_at)
