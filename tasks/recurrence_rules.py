"""Recurrence rules for repeating tasks: parsing, canonical text and occurrence maths.

Pure Python (no Django, no database). A series is described by a :class:`Rule` plus an
*anchor*: the due time of its first occurrence. Occurrence ``k`` is always computed from
the anchor (never from occurrence ``k - 1``), on wall-clock time in the task's IANA time
zone, and returned as an aware UTC datetime.

Semantics in short (see ``docs/recurrence.md`` for the user-facing version):

* The anchor is occurrence 0, even when it does not match the rule (for example a weekly
  Mon/Thu rule anchored on a Tuesday). Later occurrences are the rule's matches on local
  dates after the anchor's date, at the anchor's local wall-clock time. ``count`` includes
  the anchor; ``until`` is the last local date allowed (inclusive).
* Plain ``monthly``/``yearly`` (no month day or other ``BY*`` part) keep the anchor's day
  and clamp it to the month's length: Jan 31 -> Feb 28/29, Mar 31, Apr 30; Feb 29 -> Feb 28
  in non-leap years.
* An explicit month day (``month_day`` / ``BYMONTHDAY``) and every rule stored as RRULE text
  follow RFC 5545: months without that day are skipped; ``-1`` is the last day.
* A wall-clock time inside a DST gap moves forward by the gap; an ambiguous wall-clock time
  (DST fall-back) resolves to its first instance (``fold=0``).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import count as _count_from
from math import gcd
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule as _du

__all__ = [
    "FREQUENCIES",
    "MAX_COUNT",
    "MAX_INTERVAL",
    "WEEKDAYS",
    "RecurrenceError",
    "Rule",
    "next_occurrence",
    "occurrence",
    "parse_rule",
    "rule_to_dict",
    "rule_to_text",
    "validate_timezone",
]

FREQUENCIES = ("daily", "weekly", "monthly", "yearly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVAL = 999
MAX_COUNT = 10000
MAX_TEXT_LENGTH = 500

_RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: i for names in (WEEKDAYS, _FULL_DAYS) for i, name in enumerate(names)}
_RRULE_PART_NAMES = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL")
_DICT_KEYS = ("freq", "interval", "weekdays", "month_day", "until", "count", "rrule")
# Longest possible length of each month (February may have 29 days).
_MAX_MONTH_LENGTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats exactly every 400 years (4800 months).
_CALENDAR_CYCLE_MONTHS = 4800


class RecurrenceError(ValueError):
    """An invalid recurrence rule or time zone. ``str(err)`` is the human-readable message."""

    def __init__(self, message: str, *, code: str = "invalid_recurrence"):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------
# Rule
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A validated recurrence rule.

    Structured rules use ``freq``/``interval``/``weekdays``/``month_day``. Rules those fields
    cannot express (``BYDAY=-1FR``, ``BYMONTH``, several month days, ...) carry their
    canonical RRULE text in ``rrule``; ``freq``, ``interval``, ``until`` and ``count`` then
    mirror the RRULE, while ``weekdays`` is empty and ``month_day`` is None.

    Build rules with :func:`parse_rule`; the constructor validates and normalises
    (weekdays are lower-cased, de-duplicated and sorted Monday first).
    """

    freq: str
    interval: int = 1
    weekdays: tuple[str, ...] = ()
    month_day: int | None = None
    until: date | None = None
    count: int | None = None
    rrule: str | None = None

    def __post_init__(self) -> None:
        if self.freq not in FREQUENCIES:
            raise RecurrenceError("freq must be one of daily, weekly, monthly, yearly")
        if not _is_int(self.interval) or not 1 <= self.interval <= MAX_INTERVAL:
            raise RecurrenceError(f"interval must be an integer between 1 and {MAX_INTERVAL}")
        object.__setattr__(self, "weekdays", _normalise_weekdays(self.weekdays))
        if self.month_day is not None and (
            not _is_int(self.month_day) or not (1 <= self.month_day <= 31 or self.month_day == -1)
        ):
            raise RecurrenceError("month_day must be 1 to 31, or -1 for the last day of the month")
        if self.until is not None and (
            not isinstance(self.until, date) or isinstance(self.until, datetime)
        ):
            raise RecurrenceError("until must be a date (YYYY-MM-DD)")
        if self.count is not None and (not _is_int(self.count) or not 1 <= self.count <= MAX_COUNT):
            raise RecurrenceError(f"count must be an integer between 1 and {MAX_COUNT}")
        if self.count is not None and self.until is not None:
            raise RecurrenceError("count and until cannot be used together")
        if self.rrule is not None:
            self._check_rrule()
            return
        if self.weekdays and self.freq != "weekly":
            raise RecurrenceError(
                "weekdays are only allowed with freq 'weekly' "
                "(use an RRULE such as FREQ=MONTHLY;BYDAY=-1FR for other weekday rules)"
            )
        if self.month_day is not None and self.freq != "monthly":
            raise RecurrenceError("month_day is only allowed with freq 'monthly'")

    def _check_rrule(self) -> None:
        if not isinstance(self.rrule, str):
            raise RecurrenceError("rrule must be a string")
        parts = _parse_rrule(self.rrule)
        if not _needs_rrule(parts):
            raise RecurrenceError(
                "rrule is only for rules that freq, interval, weekdays and month_day cannot "
                "express; use parse_rule() to build this rule"
            )
        object.__setattr__(self, "rrule", _parts_to_text(parts))
        if self.weekdays or self.month_day is not None:
            raise RecurrenceError("weekdays and month_day must be empty when rrule is set")
        if (self.freq, self.interval, self.until, self.count) != (
            parts.freq,
            parts.interval,
            parts.until,
            parts.count,
        ):
            raise RecurrenceError("freq, interval, until and count must match rrule")

    @property
    def is_simple(self) -> bool:
        """True when the rule is just a frequency word (interval 1, nothing else)."""
        return (
            self.rrule is None
            and self.interval == 1
            and not self.weekdays
            and self.month_day is None
            and self.until is None
            and self.count is None
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _weekday_index(name: object) -> int:
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in _DAY_NAMES:
        raise RecurrenceError(
            f"weekdays must be a list of mon, tue, wed, thu, fri, sat, sun (got {name!r})"
        )
    return _DAY_NAMES[key]


def _normalise_weekdays(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise RecurrenceError("weekdays must be a list of mon, tue, wed, thu, fri, sat, sun")
    return tuple(WEEKDAYS[i] for i in sorted({_weekday_index(v) for v in value}))


# --------------------------------------------------------------------------------------
# RRULE subset
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """Parsed, validated and normalised RRULE parts."""

    freq: str  # lower case, one of FREQUENCIES
    interval: int = 1
    byday: tuple[tuple[int, int], ...] = ()  # (ordinal or 0, weekday 0=Monday), sorted
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    until: date | None = None
    count: int | None = None


_BYDAY_RE = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.ASCII)
_BYMONTHDAY_RE = re.compile(r"[+-]?\d{1,2}", re.ASCII)
_BYMONTH_RE = re.compile(r"\+?\d{1,2}", re.ASCII)
_UNTIL_RE = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?", re.ASCII)


@lru_cache(maxsize=1024)
def _parse_rrule(text: str) -> _Parts:
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    values: dict[str, str] = {}
    for raw in body.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip().upper(), value.strip()
        if not sep or not name:
            raise RecurrenceError(f"malformed RRULE part {item!r}: expected NAME=VALUE")
        if name not in _RRULE_PART_NAMES and name != "WKST":
            raise RecurrenceError(
                f"unsupported RRULE part {name} (supported: {', '.join(_RRULE_PART_NAMES)})"
            )
        if name in values:
            raise RecurrenceError(f"{name} is given more than once")
        if not value:
            raise RecurrenceError(f"{name} needs a value")
        values[name] = value

    if "FREQ" not in values:
        raise RecurrenceError("FREQ is required (DAILY, WEEKLY, MONTHLY or YEARLY)")
    freq = values["FREQ"].lower()
    if freq not in FREQUENCIES:
        raise RecurrenceError(
            f"FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY (got {values['FREQ']!r})"
        )
    if "WKST" in values and values["WKST"].upper() != "MO":
        raise RecurrenceError("WKST must be MO (weeks start on Monday)")
    if "COUNT" in values and "UNTIL" in values:
        raise RecurrenceError("COUNT and UNTIL cannot be used together")

    interval = _rrule_positive_int(values, "INTERVAL", MAX_INTERVAL) or 1
    count = _rrule_positive_int(values, "COUNT", MAX_COUNT)
    until = _rrule_until(values["UNTIL"]) if "UNTIL" in values else None
    bymonth = _rrule_bymonth(values["BYMONTH"]) if "BYMONTH" in values else ()
    bymonthday = ()
    if "BYMONTHDAY" in values:
        if freq == "weekly":
            raise RecurrenceError("BYMONTHDAY cannot be used with FREQ=WEEKLY")
        bymonthday = _rrule_bymonthday(values["BYMONTHDAY"])
    byday = _rrule_byday(values["BYDAY"], freq, bool(bymonth)) if "BYDAY" in values else ()

    if (
        bymonth
        and bymonthday
        and not any(
            abs(day) <= _MAX_MONTH_LENGTH[month - 1] for month in bymonth for day in bymonthday
        )
    ):
        raise RecurrenceError("BYMONTHDAY and BYMONTH never match (for example 30 February)")
    parts = _Parts(freq, interval, byday, bymonthday, bymonth, until, count)
    if not _filters_can_match(parts):
        raise RecurrenceError("BYDAY, BYMONTHDAY and BYMONTH together never match any date")
    return parts


def _rrule_positive_int(values: dict[str, str], name: str, maximum: int) -> int | None:
    if name not in values:
        return None
    value = values[name]
    if not value.isdecimal() or not value.isascii() or int(value) < 1:
        raise RecurrenceError(f"{name} must be a positive integer (got {value!r})")
    if int(value) > maximum:
        raise RecurrenceError(f"{name} must be at most {maximum} (got {value})")
    return int(value)


def _rrule_until(value: str) -> date:
    match = _UNTIL_RE.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
        time(hour, minute, second)  # validates the time part even though only the date is kept
        return date(year, month, day)
    except ValueError:
        raise RecurrenceError(
            f"UNTIL must be a date (YYYYMMDD) or date-time (YYYYMMDDTHHMMSS[Z]) (got {value!r})"
        ) from None


def _rrule_bymonth(value: str) -> tuple[int, ...]:
    months = set()
    for raw in value.split(","):
        # int() strips fewer blanks than str.strip() (not U+001F, say): strip first.
        item = raw.strip()
        if not _BYMONTH_RE.fullmatch(item) or not 1 <= int(item) <= 12:
            raise RecurrenceError(f"BYMONTH values must be between 1 and 12 (got {raw!r})")
        months.add(int(item))
    return tuple(sorted(months))


def _rrule_bymonthday(value: str) -> tuple[int, ...]:
    days = set()
    for raw in value.split(","):
        item = raw.strip()
        if not _BYMONTHDAY_RE.fullmatch(item) or not 1 <= abs(int(item)) <= 31:
            raise RecurrenceError(f"BYMONTHDAY values must be 1 to 31 or -31 to -1 (got {raw!r})")
        days.add(int(item))
    return tuple(sorted(days))


def _rrule_byday(value: str, freq: str, has_bymonth: bool) -> tuple[tuple[int, int], ...]:
    days = set()
    limit = 53 if freq == "yearly" and not has_bymonth else 5
    for item in value.split(","):
        match = _BYDAY_RE.fullmatch(item.strip().upper())
        if match is None:
            raise RecurrenceError(
                "BYDAY must be a comma-separated list of MO, TU, WE, TH, FR, SA, SU, "
                f"optionally with an ordinal such as -1FR (got {item!r})"
            )
        ordinal = int(match.group(1)) if match.group(1) else 0
        if match.group(1) is not None:
            if freq not in ("monthly", "yearly"):
                raise RecurrenceError(
                    "BYDAY ordinals such as -1FR are only allowed with FREQ=MONTHLY or FREQ=YEARLY"
                )
            if not 1 <= abs(ordinal) <= limit:
                raise RecurrenceError(
                    f"BYDAY ordinal must be 1 to {limit} or -{limit} to -1 (got {item!r})"
                )
        days.add((ordinal, _RRULE_DAYS.index(match.group(2))))
    return tuple(sorted(days, key=lambda d: (d[1], d[0])))


def _parts_to_text(parts: _Parts) -> str:
    items = [f"FREQ={parts.freq.upper()}"]
    if parts.interval != 1:
        items.append(f"INTERVAL={parts.interval}")
    if parts.bymonth:
        items.append("BYMONTH=" + ",".join(map(str, parts.bymonth)))
    if parts.bymonthday:
        items.append("BYMONTHDAY=" + ",".join(map(str, parts.bymonthday)))
    if parts.byday:
        items.append(
            "BYDAY=" + ",".join(f"{n if n else ''}{_RRULE_DAYS[wd]}" for n, wd in parts.byday)
        )
    if parts.until is not None:
        items.append(f"UNTIL={_rrule_date(parts.until)}")
    if parts.count is not None:
        items.append(f"COUNT={parts.count}")
    return ";".join(items)


def _rrule_date(day: date) -> str:
    # strftime's %Y does not pad years before 1000, and UNTIL needs all four digits.
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _needs_rrule(parts: _Parts) -> bool:
    """Whether the parts go beyond what Rule's structured fields can express."""
    if parts.freq == "daily":
        return bool(parts.byday or parts.bymonthday or parts.bymonth)
    if parts.freq == "weekly":
        return bool(parts.bymonth)  # plain BYDAY maps to weekdays (ordinals were rejected)
    if parts.freq == "monthly":
        single_day = len(parts.bymonthday) == 1 and (
            parts.bymonthday[0] > 0 or parts.bymonthday[0] == -1
        )
        return bool(parts.byday or parts.bymonth or (parts.bymonthday and not single_day))
    return bool(parts.byday or parts.bymonthday or parts.bymonth)


def _rule_from_parts(parts: _Parts) -> Rule:
    if _needs_rrule(parts):
        return Rule(
            freq=parts.freq,
            interval=parts.interval,
            until=parts.until,
            count=parts.count,
            rrule=_parts_to_text(parts),
        )
    return Rule(
        freq=parts.freq,
        interval=parts.interval,
        weekdays=tuple(WEEKDAYS[wd] for _, wd in parts.byday),
        month_day=parts.bymonthday[0] if parts.bymonthday else None,
        until=parts.until,
        count=parts.count,
    )


def _parts_from_rule(rule: Rule) -> _Parts:
    if rule.rrule is not None:
        return _parse_rrule(rule.rrule)
    return _Parts(
        freq=rule.freq,
        interval=rule.interval,
        byday=tuple((0, WEEKDAYS.index(wd)) for wd in rule.weekdays),
        bymonthday=() if rule.month_day is None else (rule.month_day,),
        until=rule.until,
        count=rule.count,
    )


# --------------------------------------------------------------------------------------
# Parsing: words, phrases, RRULE text and dicts
# --------------------------------------------------------------------------------------

_UNIT_FREQ = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}
_EVERY_N_RE = re.compile(r"every (\d+) (day|week|month|year)s?", re.ASCII)
_EVERY_UNIT_RE = re.compile(r"every (day|week|month|year)")
_LAST_DAY_RE = re.compile(r"(?:every )?last day of (?:the )?month")
_DAY_LIST_SPLIT_RE = re.compile(r"\s*(?:,\s*and|,|\band\b)\s*")


def parse_rule(value: str | dict | Rule | None) -> Rule | None:
    """Parse a recurrence from the API or from storage.

    Accepts None / "" / "none" (no recurrence), the words daily/weekly/monthly/yearly, a few
    short English phrases, RFC 5545 RRULE text (with or without an ``RRULE:`` prefix), a dict
    as sent by a JSON client, or an existing :class:`Rule` (returned unchanged). Raises
    :class:`RecurrenceError` naming the problem.
    """
    if value is None or isinstance(value, Rule):
        return value
    if isinstance(value, dict):
        return _parse_dict(value)
    if not isinstance(value, str):
        raise RecurrenceError("recurrence must be a string, an object or null")
    if len(value) > MAX_TEXT_LENGTH:
        raise RecurrenceError(f"recurrence text is too long (at most {MAX_TEXT_LENGTH} characters)")
    text = " ".join(value.split()).lower()
    if text in ("", "none"):
        return None
    if text in FREQUENCIES:
        return Rule(freq=text)
    if "=" in text or text.startswith("rrule:"):
        return _rule_from_parts(_parse_rrule(value))
    rule = _parse_phrase(text)
    if rule is None:
        shown = value.strip()
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise RecurrenceError(
            f"unrecognised recurrence {shown!r}: use none, daily, weekly, monthly, yearly, "
            "a phrase such as 'every 2 weeks' or 'every mon and thu', "
            "or an RRULE such as FREQ=MONTHLY;BYDAY=-1FR"
        )
    return rule


def _parse_phrase(text: str) -> Rule | None:
    if text in ("weekdays", "every weekday"):
        return Rule(freq="weekly", weekdays=WEEKDAYS[:5])
    if _LAST_DAY_RE.fullmatch(text):
        return Rule(freq="monthly", month_day=-1)
    match = _EVERY_UNIT_RE.fullmatch(text)
    if match:
        return Rule(freq=_UNIT_FREQ[match.group(1)])
    match = _EVERY_N_RE.fullmatch(text)
    if match:
        interval = int(match.group(1))
        if not 1 <= interval <= MAX_INTERVAL:
            raise RecurrenceError(f"interval must be an integer between 1 and {MAX_INTERVAL}")
        return Rule(freq=_UNIT_FREQ[match.group(2)], interval=interval)
    if text.startswith("every "):
        names = _DAY_LIST_SPLIT_RE.split(text[len("every ") :])
        if names and all(name in _DAY_NAMES for name in names):
            return Rule(freq="weekly", weekdays=tuple(names))
    return None


def _parse_dict(value: dict) -> Rule | None:
    unknown = sorted(str(key) for key in value if key not in _DICT_KEYS)
    if unknown:
        raise RecurrenceError(
            f"unknown recurrence field(s): {', '.join(unknown)} (allowed: {', '.join(_DICT_KEYS)})"
        )
    given = {key: val for key, val in value.items() if val is not None}
    if "rrule" in given:
        return _parse_dict_with_rrule(given)
    freq = given.get("freq")
    if freq is None:
        raise RecurrenceError("freq is required")
    if not isinstance(freq, str):
        raise RecurrenceError("freq must be one of none, daily, weekly, monthly, yearly")
    freq = freq.strip().lower()
    if freq == "none":
        if len(given) > 1:
            raise RecurrenceError("freq 'none' cannot be combined with other fields")
        return None
    if freq not in FREQUENCIES:
        raise RecurrenceError("freq must be one of none, daily, weekly, monthly, yearly")
    return Rule(
        freq=freq,
        interval=given.get("interval", 1),
        weekdays=given.get("weekdays", ()),
        month_day=given.get("month_day"),
        until=_dict_until(given["until"]) if "until" in given else None,
        count=given.get("count"),
    )


def _parse_dict_with_rrule(given: dict) -> Rule:
    if not isinstance(given["rrule"], str):
        raise RecurrenceError("rrule must be a string")
    rule = _rule_from_parts(_parse_rrule(given["rrule"]))
    # The other fields are optional; when present (as in rule_to_dict output) they must agree.
    expected = {
        "freq": rule.freq,
        "interval": rule.interval,
        "weekdays": list(rule.weekdays),
        "month_day": rule.month_day,
        "until": rule.until.isoformat() if rule.until else None,
        "count": rule.count,
    }
    for key, val in given.items():
        if key == "rrule":
            continue
        if key == "freq" and isinstance(val, str):
            val = val.strip().lower()
        if key == "until" and isinstance(val, date) and not isinstance(val, datetime):
            val = val.isoformat()
        if key == "weekdays" and isinstance(val, (list, tuple)):
            val = list(_normalise_weekdays(val))
        if val != expected[key]:
            raise RecurrenceError(f"{key} does not match rrule")
    return rule


def _dict_until(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RecurrenceError("until must be a date (YYYY-MM-DD)")


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def rule_to_text(rule: Rule | None) -> str:
    """Canonical storage text: "none", a frequency word, or canonical RRULE text."""
    if rule is None:
        return "none"
    if rule.is_simple:
        return rule.freq
    return _parts_to_text(_parts_from_rule(rule))


def rule_to_dict(rule: Rule | None) -> dict | None:
    """JSON-safe description; parse_rule() accepts it back."""
    if rule is None:
        return None
    return {
        "freq": rule.freq,
        "interval": rule.interval,
        "weekdays": list(rule.weekdays),
        "month_day": rule.month_day,
        "until": rule.until.isoformat() if rule.until else None,
        "count": rule.count,
        "rrule": rule.rrule,
    }


# --------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA time zone, else raise (code "invalid_timezone")."""
    if not isinstance(name, str) or not name.strip():
        raise RecurrenceError(
            "time zone must be an IANA name such as 'Europe/London'", code="invalid_timezone"
        )
    # "localtime" is the host's zone, not a portable IANA name.
    if name != "localtime":
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    shown = name if len(name) <= 60 else name[:60] + "..."
    raise RecurrenceError(f"unknown time zone {shown!r}", code="invalid_timezone")


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(validate_timezone(name))


def _require_aware(value: object, label: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{label} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{label} must be timezone-aware")
    return value


# --------------------------------------------------------------------------------------
# Occurrence maths
# --------------------------------------------------------------------------------------


def _month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_length(month_number: int) -> int:
    return calendar.monthrange(month_number // 12, month_number % 12 + 1)[1]


def _date_in_month(month_number: int, day: int) -> date:
    return date(month_number // 12, month_number % 12 + 1, day)


def _count_multiples(start: int, step: int, terms: int, modulus: int) -> int:
    """How many of start, start+step, ..., (``terms`` values) are divisible by modulus."""
    g = gcd(step, modulus)
    if start % g:
        return 0
    period = modulus // g
    first = (-(start // g) * pow(step // g, -1, period)) % period
    return 0 if first >= terms else (terms - 1 - first) // period + 1


def _count_leap_years(start: int, step: int, terms: int) -> int:
    """How many of the years start, start+step, ... (``terms`` values) are leap years."""
    return (
        _count_multiples(start, step, terms, 4)
        - _count_multiples(start, step, terms, 100)
        + _count_multiples(start, step, terms, 400)
    )


def _count_short_months(first: int, step: int, terms: int, day: int) -> int:
    """How many of the months first, first+step, ... (``terms`` values) lack ``day``."""
    cycle = 12 // gcd(step, 12)  # the month of the year repeats after this many steps
    short = 0
    for offset in range(min(cycle, terms)):
        month_number = first + step * offset
        hits = (terms - offset + cycle - 1) // cycle  # steps offset, offset+cycle, ...
        month = month_number % 12 + 1
        if month != 2:
            short += hits if _MAX_MONTH_LENGTH[month - 1] < day else 0
        elif day > 29:
            short += hits
        elif day == 29:
            year_step = step * cycle // 12
            short += hits - _count_leap_years(month_number // 12, year_step, hits)
    return short


class _Series:
    """Local dates of a series' occurrences after its anchor (index 1, 2, ...).

    Subclasses implement ``date_of(index)`` and ``iter_from(day)``; all times are the
    anchor's local wall-clock time.
    """

    def __init__(self, rule: Rule, anchor: datetime, zone: ZoneInfo):
        self.rule = rule
        self.zone = zone
        self.anchor_utc = anchor.astimezone(UTC)
        local = anchor.astimezone(zone)
        self.start = local.date()
        self.wall = local.time().replace(fold=0)

    def date_of(self, index: int) -> date | None:
        raise NotImplementedError

    def iter_from(self, day: date) -> Iterator[tuple[int, date]]:
        """Yield (index, date) from an index whose earlier occurrences are all before ``day``."""
        raise NotImplementedError

    def to_utc(self, day: date) -> datetime | None:
        # fold=0: an ambiguous time takes its first instance; a time in a gap gets the
        # offset from before the transition, which moves it forward by the gap's length.
        try:
            return datetime.combine(day, self.wall, tzinfo=self.zone).astimezone(UTC)
        except (OverflowError, ValueError):
            return None


class _ArithmeticSeries(_Series):
    """Structured rules, by arithmetic on periods (no iteration from the anchor).

    The rule's periods are numbered 0, 1, 2, ...; period 0 contains the anchor's date. Each
    period holds a sorted list of candidate dates; candidates are numbered across periods,
    and those on or before the anchor's date (``skipped``, all in period 0) are dropped.
    """

    def __init__(self, rule: Rule, anchor: datetime, zone: ZoneInfo):
        super().__init__(rule, anchor, zone)
        start, step = self.start, rule.interval
        self.step = step
        self.per_period: int | None = 1  # candidates per period, None when it varies
        if rule.freq == "weekly":
            self.week0 = start - timedelta(days=start.weekday())
            self.days = [WEEKDAYS.index(wd) for wd in rule.weekdays] or [start.weekday()]
            self.per_period = len(self.days)
        elif rule.freq == "monthly":
            self.month0 = _month_number(start)
            if rule.month_day is not None and rule.month_day > 28:
                self.per_period = None  # months without that day are skipped
        self.skipped = sum(1 for day in self.period_dates(0) if day <= start)

    # -- per-frequency period arithmetic ---------------------------------------------

    def period_dates(self, period: int) -> list[date]:
        rule, start = self.rule, self.start
        if rule.freq == "daily":
            return [start + timedelta(days=period * self.step)]
        if rule.freq == "weekly":
            week = self.week0 + timedelta(weeks=period * self.step)
            return [week + timedelta(days=d) for d in self.days]
        if rule.freq == "monthly":
            month_number = self.month0 + period * self.step
            length = _month_length(month_number)
            if rule.month_day is None:
                day = min(start.day, length)  # plain monthly: clamp the anchor's day
            elif rule.month_day == -1:
                day = length
            elif rule.month_day <= length:
                day = rule.month_day
            else:
                return []
            return [_date_in_month(month_number, day)]
        year = start.year + period * self.step
        return [date(year, start.month, min(start.day, calendar.monthrange(year, start.month)[1]))]

    def period_of(self, day: date) -> int:
        """The period whose span contains ``day`` (may be negative)."""
        freq = self.rule.freq
        if freq == "daily":
            return (day - self.start).days // self.step
        if freq == "weekly":
            return (day - self.week0).days // (7 * self.step)
        if freq == "monthly":
            return (_month_number(day) - self.month0) // self.step
        return (day.year - self.start.year) // self.step

    def candidates_before(self, period: int) -> int:
        """Number of candidates in periods 0 .. period-1."""
        if self.per_period is not None:
            return period * self.per_period
        short = _count_short_months(self.month0, self.step, period, self.rule.month_day)
        return period - short

    def locate(self, candidate: int) -> tuple[int, int] | None:
        """(period, position) of a candidate number, or None if it does not exist."""
        if self.per_period is not None:
            return divmod(candidate, self.per_period)
        # Variable counts: the pattern repeats with the 400-year calendar cycle.
        cycle = _CALENDAR_CYCLE_MONTHS // gcd(self.step, _CALENDAR_CYCLE_MONTHS)
        per_cycle = self.candidates_before(cycle)
        if per_cycle == 0:
            return None
        low, high = 0, (candidate // per_cycle + 1) * cycle
        while low < high:  # smallest period whose end passes the candidate
            middle = (low + high) // 2
            if self.candidates_before(middle + 1) > candidate:
                high = middle
            else:
                low = middle + 1
        return low, candidate - self.candidates_before(low)

    # -- _Series interface -----------------------------------------------------------

    def date_of(self, index: int) -> date | None:
        where = self.locate(index - 1 + self.skipped)
        if where is None:
            return None
        try:
            return self.period_dates(where[0])[where[1]]
        except (OverflowError, ValueError):  # beyond year 9999
            return None

    def iter_from(self, day: date) -> Iterator[tuple[int, date]]:
        period = max(self.period_of(day), 0)
        first = max(self.candidates_before(period) - self.skipped + 1, 1)
        for index in _count_from(first):
            found = self.date_of(index)
            if found is None:
                return
            yield index, found


def _day_matches(parts: _Parts, day: date, default_day: int | None) -> bool:
    """RFC 5545 BYMONTH/BYMONTHDAY/BYDAY test of one date for DAILY, MONTHLY or YEARLY.

    ``default_day`` is the anchor's day of month, used by MONTHLY/YEARLY rules without
    BYMONTHDAY or BYDAY (None accepts any day).
    """
    if parts.bymonth and day.month not in parts.bymonth:
        return False
    if not parts.bymonthday and not parts.byday:
        return parts.freq == "daily" or default_day is None or day.day == default_day
    length = calendar.monthrange(day.year, day.month)[1]
    if parts.bymonthday and not (
        day.day in parts.bymonthday or day.day - length - 1 in parts.bymonthday
    ):
        return False
    if not parts.byday:
        return True
    if parts.freq == "yearly" and not parts.bymonth:  # ordinals count within the year
        first, last = date(day.year, 1, 1), date(day.year, 12, 31)
    else:  # ordinals count within the month
        first, last = day.replace(day=1), day.replace(day=length)
    for ordinal, weekday in parts.byday:
        if day.weekday() != weekday:
            continue
        if (
            ordinal == 0
            or (ordinal > 0 and (day - first).days // 7 + 1 == ordinal)
            or (ordinal < 0 and (last - day).days // 7 + 1 == -ordinal)
        ):
            return True
    return False


def _filters_can_match(parts: _Parts) -> bool:
    """Whether some date passes the BY* filters (ignoring the anchor and the interval).

    2001-2028 holds every kind of year (leap or not, starting on each weekday), so it holds
    every kind of month too.
    """
    if parts.freq == "weekly" or not (parts.bymonthday or parts.byday):
        return True
    day, end = date(2001, 1, 1), date(2028, 12, 31)
    while day <= end:
        if _day_matches(parts, day, None):
            return True
        day += timedelta(days=1)
    return False


def _expand_rrule(parts: _Parts, start: date, until: datetime | None = None) -> Iterable[datetime]:
    """dateutil expansion of the parts from ``start`` (naive, midnight), optionally bounded."""
    plain = tuple(day for day in parts.byday if not day[0])
    nth = tuple(day for day in parts.byday if day[0])
    if plain and nth:
        # dateutil intersects plain and ordinal weekdays (BYDAY=TH,3WE would need a Thursday
        # that is also the third Wednesday); RFC 5545 means their union. A branch that never
        # matches is left out, or merging would make dateutil search it up to year 9999.
        branches = [replace(parts, byday=days) for days in (plain, nth)]
        branches = [branch for branch in branches if _matches_after(branch, start)]
        if len(branches) == 2:
            union = _du.rruleset(cache=False)
            for branch in branches:
                union.rrule(_dateutil_rrule(branch, start, until))
            return union
        return _dateutil_rrule(branches[0], start, until) if branches else ()
    return _dateutil_rrule(parts, start, until)


def _dateutil_rrule(parts: _Parts, start: date, until: datetime | None) -> _du.rrule:
    return _du.rrule(
        getattr(_du, parts.freq.upper()),
        dtstart=datetime.combine(start, time()),
        interval=parts.interval,
        wkst=_du.MO,
        byweekday=[_du.weekday(wd, n) if n else _du.weekday(wd) for n, wd in parts.byday] or None,
        bymonthday=parts.bymonthday or None,
        bymonth=parts.bymonth or None,
        until=until,
        cache=False,
    )


def _cycle_end(parts: _Parts, start: date) -> datetime | None:
    """A date-time at least one full repetition of the rule's pattern after ``start``.

    Calendar and interval repeat together after lcm(interval, 400 years) in the rule's own
    unit, so a rule with no match in that span never matches. None when beyond year 9999.
    """
    n = parts.interval
    try:
        if parts.freq == "daily":
            end = start + timedelta(days=n * 146097 // gcd(n, 146097))
        elif parts.freq == "weekly":
            end = start + timedelta(days=7 * n * 146097 // gcd(7 * n, 146097))
        elif parts.freq == "monthly":
            months = n * 4800 // gcd(n, 4800)
            end = _date_in_month(_month_number(start) + months + 1, 1)
        else:
            end = date(start.year + n * 400 // gcd(n, 400) + 1, 1, 1)
    except (OverflowError, ValueError):
        return None
    return datetime.combine(end, time())


@lru_cache(maxsize=1024)
def _matches_after(parts: _Parts, start: date) -> bool:
    """Whether the RRULE parts have any match after ``start``.

    Patterns repeat (see _cycle_end), so searching one repetition is enough. MONTHLY and
    YEARLY rules are checked period by period here, since dateutil needs about a second to
    walk 400 years of months; DAILY and WEEKLY rules with a satisfiable filter match soon.
    """
    n = parts.interval
    if parts.freq == "monthly":
        first = _month_number(start)
        periods = (
            (first + n * j)
            for j in range(_CALENDAR_CYCLE_MONTHS // gcd(n, _CALENDAR_CYCLE_MONTHS) + 1)
        )
        spans = ((_date_in_month(m, 1), (m % 12 + 1, _month_length(m))) for m in periods)
    elif parts.freq == "yearly":
        years = (start.year + n * j for j in range(400 // gcd(n, 400) + 1))
        spans = ((date(y, 1, 1), (calendar.isleap(y),)) for y in years)
    elif parts.byday and n % 7 == 0 and start.weekday() not in {wd for _, wd in parts.byday}:
        return False  # every INTERVAL-th day is the anchor's weekday, which BYDAY excludes
    else:
        horizon = _cycle_end(parts, start)
        return any(found.date() > start for found in _expand_rrule(parts, start, horizon))

    known: dict[tuple, bool] = {}
    try:
        for span_start, kind in spans:
            if parts.bymonth and parts.freq == "monthly" and kind[0] not in parts.bymonth:
                continue
            # Periods of the same kind starting on the same weekday have the same matches.
            key = (*kind, span_start.weekday())
            if span_start > start and key in known:
                if known[key]:
                    return True
                continue
            span_end = (
                span_start.replace(day=kind[1])
                if parts.freq == "monthly"
                else span_start.replace(month=12, day=31)
            )
            day, found = max(span_start, start + timedelta(days=1)), False
            while day <= span_end and not found:
                found = _day_matches(parts, day, start.day)
                day += timedelta(days=1)
            if found:
                return True
            if span_start > start:
                known[key] = False
    except (OverflowError, ValueError):  # reached year 9999
        pass
    return False


class _RRuleSeries(_Series):
    """Rules stored as RRULE text, expanded with dateutil on naive local dates."""

    def __init__(self, rule: Rule, anchor: datetime, zone: ZoneInfo):
        super().__init__(rule, anchor, zone)
        self._parts = _parse_rrule(rule.rrule)
        # Without this check a rule that never matches would make dateutil search to 9999.
        self._empty = not _matches_after(self._parts, self.start)

    def _dates(self) -> Iterator[tuple[int, date]]:
        if self._empty:
            return iter(())
        until = None
        if self.rule.until is not None and self.rule.until < date.max:
            until = datetime.combine(self.rule.until + timedelta(days=1), time())
        # dateutil omits the start when it does not match the rule; the anchor is always
        # index 0 here, so only matches after the anchor's date are numbered.
        matches = _expand_rrule(self._parts, self.start, until)
        later = (found.date() for found in matches if found.date() > self.start)
        return enumerate(later, start=1)

    def date_of(self, index: int) -> date | None:
        for number, found in self._dates():
            if number == index:
                return found
        return None

    def iter_from(self, day: date) -> Iterator[tuple[int, date]]:
        return self._dates()


def _series(rule: Rule, anchor: datetime, tz: str) -> _Series:
    if not isinstance(rule, Rule):
        raise TypeError("rule must be a Rule (use parse_rule())")
    zone = _zone(tz)
    _require_aware(anchor, "anchor")
    if rule.rrule is not None:
        return _RRuleSeries(rule, anchor, zone)
    return _ArithmeticSeries(rule, anchor, zone)


def _ended(rule: Rule, index: int, day: date) -> bool:
    if rule.count is not None and index >= rule.count:
        return True
    return rule.until is not None and day > rule.until


def occurrence(rule: Rule, *, anchor: datetime, tz: str, index: int) -> datetime | None:
    """The ``index``-th occurrence (0 is the anchor) in UTC, or None past the series' end."""
    if not _is_int(index) or index < 0:
        raise ValueError("index must be a non-negative integer")
    series = _series(rule, anchor, tz)
    if index == 0:
        return series.anchor_utc
    if rule.count is not None and index >= rule.count:
        return None
    day = series.date_of(index)
    if day is None or _ended(rule, index, day):
        return None
    return series.to_utc(day)


def next_occurrence(
    rule: Rule, *, anchor: datetime, tz: str, after: datetime
) -> tuple[datetime, int] | None:
    """First occurrence strictly after ``after``, as (UTC datetime, index); None once ended."""
    series = _series(rule, anchor, tz)
    _require_aware(after, "after")
    if series.anchor_utc > after:
        return series.anchor_utc, 0
    try:
        # Two days of slack: a candidate two local days earlier is always earlier in time.
        start_from = after.astimezone(series.zone).date() - timedelta(days=2)
    except OverflowError:
        return None
    for index, day in series.iter_from(start_from):
        if _ended(rule, index, day):
            return None
        when = series.to_utc(day)
        if when is None:
            return None
        if when > after:
            return when, index
    return None
