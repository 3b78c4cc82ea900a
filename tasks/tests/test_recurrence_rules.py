"""Tests for the pure recurrence maths in tasks.recurrence_rules (no database needed)."""

import calendar
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tasks.recurrence_rules import (
    WEEKDAYS,
    RecurrenceError,
    Rule,
    SeriesPosition,
    following_instances,
    next_occurrence,
    occurrence,
    parse_rule,
    rule_to_dict,
    rule_to_text,
    series_dues,
    validate_timezone,
)

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def at(tz, *args):
    """An aware datetime on the wall clock of ``tz``."""
    return datetime(*args, tzinfo=ZoneInfo(tz))


def local_series(rule, anchor, tz, n):
    """The first ``n`` occurrences as local wall-clock datetimes (None past the end)."""
    result = []
    for index in range(n):
        when = occurrence(rule, anchor=anchor, tz=tz, index=index)
        result.append(None if when is None else when.astimezone(ZoneInfo(tz)))
    return result


def local_dates(rule, anchor, tz, n):
    return [None if d is None else d.date() for d in local_series(rule, anchor, tz, n)]


# --------------------------------------------------------------------------------------
# Listing occurrences: rule, anchor (London wall clock) and the local dates that follow
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "anchor", "expected"),
    [
        pytest.param(
            "yearly",
            (2024, 2, 29, 12, 0),
            # common years use Feb 28 and leap years return to Feb 29
            [
                date(2024, 2, 29),
                date(2025, 2, 28),
                date(2026, 2, 28),
                date(2027, 2, 28),
                date(2028, 2, 29),
                date(2029, 2, 28),
            ],
            id="yearly-from-feb-29-uses-feb-28-in-common-years",
        ),
        pytest.param(
            "FREQ=MONTHLY;BYMONTHDAY=31",
            (2024, 1, 31, 9, 0),
            # an explicit BYMONTHDAY follows RFC 5545 (unlike plain "monthly"): months without
            # a 31st are skipped
            [date(2024, 1, 31), date(2024, 3, 31), date(2024, 5, 31), date(2024, 7, 31)],
            id="explicit-month-day-31-skips-short-months-like-rfc-5545",
        ),
        pytest.param(
            "every mon and thu",
            (2024, 1, 1, 9, 0),  # a Monday
            # they alternate Monday / Thursday
            [
                date(2024, 1, 1),
                date(2024, 1, 4),
                date(2024, 1, 8),
                date(2024, 1, 11),
                date(2024, 1, 15),
            ],
            id="weekly-on-monday-and-thursday",
        ),
        pytest.param(
            Rule(freq="weekly", weekdays=("thu", "mon")),
            (2024, 1, 2, 9, 0),  # a Tuesday
            # the anchor is first, followed by the listed weekdays
            [date(2024, 1, 2), date(2024, 1, 4), date(2024, 1, 8), date(2024, 1, 11)],
            id="weekly-anchor-not-on-listed-weekday-is-still-index-0",
        ),
        pytest.param(
            "every 2 weeks",
            (2024, 1, 3, 9, 0),  # a Wednesday
            # 14 days apart on the same weekday
            [date(2024, 1, 3), date(2024, 1, 17), date(2024, 1, 31), date(2024, 2, 14)],
            id="every-two-weeks",
        ),
        pytest.param(
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
            (2024, 1, 4, 9, 0),  # a Thursday
            # weeks count from the anchor's week: the week after it is skipped
            [
                date(2024, 1, 4),
                date(2024, 1, 15),
                date(2024, 1, 18),
                date(2024, 1, 29),
                date(2024, 2, 1),
            ],
            id="every-two-weeks-on-monday-and-thursday-counts-weeks-from-anchor-week",
        ),
        pytest.param(
            "FREQ=MONTHLY;BYDAY=1MO,FR",
            (2024, 1, 1, 9, 0),
            # the first Monday of the month and every Friday: both kinds of day appear
            [
                date(2024, 1, 1),
                date(2024, 1, 5),
                date(2024, 1, 12),
                date(2024, 1, 19),
                date(2024, 1, 26),
                date(2024, 2, 2),
                date(2024, 2, 5),
                date(2024, 2, 9),
            ],
            id="rrule-plain-and-ordinal-weekdays-combine-as-a-union",
        ),
    ],
)
def test_occurrences_follow_the_rule(rule, anchor, expected):
    assert local_dates(parse_rule(rule), at(LONDON, *anchor), LONDON, len(expected)) == expected


# --------------------------------------------------------------------------------------
# Month end and leap years
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2023, 2024])
def test_monthly_from_jan_31_follows_each_month_end(year):
    # given a monthly task first due on January 31st
    rule = parse_rule("monthly")
    anchor = at(LONDON, year, 1, 31, 9, 0)
    # when we list a year of occurrences
    dates = local_dates(rule, anchor, LONDON, 13)
    # then each lands on the 31st or the month's last day, with no drift and no skipped month
    february = 29 if calendar.isleap(year) else 28
    assert dates == [
        date(year, 1, 31),
        date(year, 2, february),
        date(year, 3, 31),
        date(year, 4, 30),
        date(year, 5, 31),
        date(year, 6, 30),
        date(year, 7, 31),
        date(year, 8, 31),
        date(year, 9, 30),
        date(year, 10, 31),
        date(year, 11, 30),
        date(year, 12, 31),
        date(year + 1, 1, 31),
    ]


def test_monthly_next_occurrence_is_computed_from_anchor_not_previous():
    # given a monthly series anchored on Jan 31 whose February instance is Feb 28
    rule = parse_rule("monthly")
    anchor = at(LONDON, 2023, 1, 31, 9, 0)
    february = occurrence(rule, anchor=anchor, tz=LONDON, index=1)
    # when we ask for the one after February
    when, index = next_occurrence(rule, anchor=anchor, tz=LONDON, after=february)
    # then it is March 31, not March 28
    assert (when, index) == (at(LONDON, 2023, 3, 31, 9, 0).astimezone(UTC), 2)


@pytest.mark.parametrize(
    "value", ["last day of month", "every last day of the month", "FREQ=MONTHLY;BYMONTHDAY=-1"]
)
def test_last_day_of_month(value):
    # given a "last day of the month" rule anchored mid-January in a leap year
    rule = parse_rule(value)
    assert rule == Rule(freq="monthly", month_day=-1)
    anchor = at(LONDON, 2024, 1, 10, 18, 0)
    # when we list occurrences
    dates = local_dates(rule, anchor, LONDON, 5)
    # then the anchor comes first, then every month's last day
    assert dates == [
        date(2024, 1, 10),
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]


def test_month_day_that_never_occurs_ends_the_series():
    # given the 31st every 12 months starting in April (April never has a 31st)
    rule = Rule(freq="monthly", interval=12, month_day=31)
    anchor = at(LONDON, 2024, 4, 10, 9, 0)
    # when / then only the anchor exists
    assert occurrence(rule, anchor=anchor, tz=LONDON, index=1) is None
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=anchor) is None


# --------------------------------------------------------------------------------------
# Daylight saving time
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "spring", "autumn", "winter_utc_hour", "summer_utc_hour"),
    [
        (LONDON, date(2026, 3, 29), date(2026, 10, 25), 9, 8),
        (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1), 14, 13),
    ],
)
def test_daily_keeps_local_wall_clock_across_dst(
    tz, spring, autumn, winter_utc_hour, summer_utc_hour
):
    # given a daily 09:00 task anchored in winter
    rule = parse_rule("daily")
    anchor = at(tz, 2026, 1, 5, 9, 0)
    for change in (spring, autumn):
        # when we look at the days around a DST change
        before = next_occurrence(
            rule,
            anchor=anchor,
            tz=tz,
            after=at(tz, change.year, change.month, change.day) - timedelta(days=1),
        )
        days = [occurrence(rule, anchor=anchor, tz=tz, index=before[1] + i) for i in range(3)]
        # then the local time stays 09:00 while the UTC hour follows the offset
        assert [d.astimezone(ZoneInfo(tz)).hour for d in days] == [9, 9, 9]
        assert all(d.tzinfo is UTC for d in days)
        if change == spring:
            assert [d.hour for d in days] == [winter_utc_hour, summer_utc_hour, summer_utc_hour]
        else:
            assert [d.hour for d in days] == [summer_utc_hour, winter_utc_hour, winter_utc_hour]


def test_wall_clock_time_in_spring_forward_gap_moves_forward_by_the_gap():
    # given a daily 02:30 New York task; 02:30 does not exist on 2026-03-08
    rule = parse_rule("daily")
    anchor = at(NEW_YORK, 2026, 3, 7, 2, 30)
    # when we compute the gap day and the day after
    gap_day = occurrence(rule, anchor=anchor, tz=NEW_YORK, index=1)
    next_day = occurrence(rule, anchor=anchor, tz=NEW_YORK, index=2)
    # then the gap day is 03:30 EDT (07:30 UTC) and the next day is back at 02:30
    assert gap_day == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert gap_day.astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == "03:30"
    assert next_day == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)


def test_ambiguous_wall_clock_time_takes_first_instance():
    # given a daily 01:30 New York task; 01:30 happens twice on 2026-11-01
    rule = parse_rule("daily")
    anchor = at(NEW_YORK, 2026, 10, 31, 1, 30)
    # when we compute the fall-back day
    when = occurrence(rule, anchor=anchor, tz=NEW_YORK, index=1)
    # then it is the first 01:30 (EDT, UTC-4)
    assert when == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_anchor_in_another_zone_is_read_on_the_task_zone_wall_clock():
    # given an anchor expressed in UTC for a London task (09:00 BST in summer)
    rule = parse_rule("daily")
    anchor = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
    # when we cross the October change
    when = occurrence(rule, anchor=anchor, tz=LONDON, index=10)
    # then the local 09:00 is kept (now 09:00 UTC)
    assert when == datetime(2026, 10, 30, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# Weekdays and intervals
# --------------------------------------------------------------------------------------


def test_weekdays_phrase_is_monday_to_friday():
    # given / when
    rule = parse_rule("weekdays")
    # then
    assert rule == Rule(freq="weekly", weekdays=("mon", "tue", "wed", "thu", "fri"))
    assert rule_to_text(rule) == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"


# --------------------------------------------------------------------------------------
# Ends: count and until
# --------------------------------------------------------------------------------------


def test_count_ends_the_series():
    # given 3 daily occurrences in total, anchor included
    rule = parse_rule("FREQ=DAILY;COUNT=3")
    anchor = at(LONDON, 2024, 5, 1, 9, 0)
    # when we walk the series with next_occurrence
    last = occurrence(rule, anchor=anchor, tz=LONDON, index=2)
    # then the third is the last one
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=anchor) == (
        occurrence(rule, anchor=anchor, tz=LONDON, index=1),
        1,
    )
    assert last == at(LONDON, 2024, 5, 3, 9, 0).astimezone(UTC)
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=last) is None
    assert occurrence(rule, anchor=anchor, tz=LONDON, index=3) is None


def test_until_is_an_inclusive_local_date():
    # given weekly until 2024-05-15 (a Wednesday occurrence)
    rule = parse_rule({"freq": "weekly", "until": "2024-05-15"})
    anchor = at(NEW_YORK, 2024, 5, 1, 23, 30)  # 03:30 UTC the next day
    # when we list occurrences
    dates = local_dates(rule, anchor, NEW_YORK, 4)
    # then the until date itself is included and nothing after it
    assert dates == [date(2024, 5, 1), date(2024, 5, 8), date(2024, 5, 15), None]
    last = occurrence(rule, anchor=anchor, tz=NEW_YORK, index=2)
    assert next_occurrence(rule, anchor=anchor, tz=NEW_YORK, after=last) is None
    assert next_occurrence(rule, anchor=anchor, tz=NEW_YORK, after=last - timedelta(seconds=1)) == (
        last,
        2,
    )


def test_next_occurrence_before_anchor_is_the_anchor():
    # given a series that has not started yet
    rule = parse_rule("daily")
    anchor = at(LONDON, 2024, 5, 1, 9, 0)
    # when we ask for the first occurrence after an earlier time
    result = next_occurrence(rule, anchor=anchor, tz=LONDON, after=anchor - timedelta(days=3))
    # then it is the anchor itself, index 0, in UTC
    assert result == (datetime(2024, 5, 1, 8, 0, tzinfo=UTC), 0)
    assert result[0].tzinfo is UTC


def test_next_occurrence_is_strictly_after():
    # given a daily series
    rule = parse_rule("daily")
    anchor = at(LONDON, 2024, 5, 1, 9, 0)
    second = occurrence(rule, anchor=anchor, tz=LONDON, index=1)
    # when `after` is exactly an occurrence
    # then the following one is returned
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=anchor) == (second, 1)
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=second)[1] == 2


# --------------------------------------------------------------------------------------
# RRULE text
# --------------------------------------------------------------------------------------


def test_rrule_last_friday_of_month():
    # given the last Friday of every month
    rule = parse_rule("RRULE:FREQ=MONTHLY;BYDAY=-1FR")
    anchor = at(LONDON, 2024, 1, 26, 16, 0)
    # when we list occurrences
    dates = local_dates(rule, anchor, LONDON, 6)
    # then each is a month's last Friday, at the anchor's local time
    assert dates == [
        date(2024, 1, 26),
        date(2024, 2, 23),
        date(2024, 3, 29),
        date(2024, 4, 26),
        date(2024, 5, 31),
        date(2024, 6, 28),
    ]
    assert occurrence(rule, anchor=anchor, tz=LONDON, index=3) == datetime(
        2024, 4, 26, 15, 0, tzinfo=UTC
    )
    assert rule.rrule == "FREQ=MONTHLY;BYDAY=-1FR"
    assert rule_to_text(rule) == "FREQ=MONTHLY;BYDAY=-1FR"


def test_rrule_with_bymonth_and_count():
    # given the second Monday of March and September, 3 times in total
    rule = parse_rule("freq=yearly;bymonth=9,3;byday=2mo;count=3")
    anchor = at(LONDON, 2024, 3, 11, 9, 0)
    # when we list occurrences
    dates = local_dates(rule, anchor, LONDON, 4)
    # then
    assert dates == [date(2024, 3, 11), date(2024, 9, 9), date(2025, 3, 10), None]
    assert rule_to_text(rule) == "FREQ=YEARLY;BYMONTH=3,9;BYDAY=2MO;COUNT=3"


@pytest.mark.parametrize(
    ("text", "anchor"),
    [
        ("FREQ=MONTHLY;INTERVAL=2;BYMONTH=3", (2024, 2, 4, 9, 0)),  # visits Feb, Apr, ...
        ("FREQ=YEARLY;BYMONTH=4,6", (2024, 1, 31, 9, 0)),  # the 31st of April / June
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", (2021, 2, 1, 9, 0)),  # odd years
    ],
)
def test_rrule_that_never_matches_after_its_anchor_ends_at_once(text, anchor):
    # given an RRULE that, from this anchor, never matches again
    rule = parse_rule(text)
    start = at(LONDON, *anchor)
    # when we ask for the next occurrence
    started = time.perf_counter()
    result = next_occurrence(rule, anchor=start, tz=LONDON, after=start)
    # then the series has ended, and finding that out is quick
    assert result is None
    assert occurrence(rule, anchor=start, tz=LONDON, index=1) is None
    assert time.perf_counter() - started < 0.5


def test_rrule_daily_every_7_days_on_another_weekday_is_empty_and_fast():
    # given every 7th day but only on Mondays, anchored on a Tuesday (never matches)
    rule = parse_rule("FREQ=DAILY;INTERVAL=7;BYDAY=MO")
    anchor = at(LONDON, 2024, 1, 2, 9, 0)
    # when / then only the anchor exists
    started = time.perf_counter()
    assert next_occurrence(rule, anchor=anchor, tz=LONDON, after=anchor) is None
    assert time.perf_counter() - started < 0.5


def test_rrule_weekly_every_7_weeks_on_another_weekday_still_matches():
    """Regression: the shortcut for DAILY;INTERVAL=7 also caught WEEKLY rules, whose weeks hold
    every listed weekday, so this series ended at its anchor."""
    # given Mondays in January every 7th week, anchored on Saturday 2000-01-01
    rule = parse_rule("FREQ=WEEKLY;INTERVAL=7;BYMONTH=1;BYDAY=MO")
    anchor = at(LONDON, 2000, 1, 1, 9, 0)
    # when we list occurrences
    dates = local_dates(rule, anchor, LONDON, 4)
    # then they are the January Mondays of every 7th week from the anchor's week (Dec 27, 1999)
    assert dates == [date(2000, 1, 1), date(2001, 1, 22), date(2003, 1, 27), date(2004, 1, 5)]
    assert all((day - date(1999, 12, 27)).days % 49 == 0 for day in dates[1:])


# --------------------------------------------------------------------------------------
# Parsing: accepted forms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  None ", None),
        ("daily", Rule(freq="daily")),
        (" Weekly ", Rule(freq="weekly")),
        ("MONTHLY", Rule(freq="monthly")),
        ("yearly", Rule(freq="yearly")),
        ("every day", Rule(freq="daily")),
        ("every 3 days", Rule(freq="daily", interval=3)),
        ("every 2 weeks", Rule(freq="weekly", interval=2)),
        ("every 1 month", Rule(freq="monthly")),
        ("every year", Rule(freq="yearly")),
        ("every mon and thu", Rule(freq="weekly", weekdays=("mon", "thu"))),
        ("every monday, thursday", Rule(freq="weekly", weekdays=("mon", "thu"))),
        ("Every Friday, Monday and Wed", Rule(freq="weekly", weekdays=("mon", "wed", "fri"))),
        ("every weekday", Rule(freq="weekly", weekdays=WEEKDAYS[:5])),
        ("FREQ=DAILY", Rule(freq="daily")),
        ("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TH,MO", Rule("weekly", 2, ("mon", "thu"))),
        ("FREQ=MONTHLY;BYMONTHDAY=15;COUNT=10", Rule("monthly", month_day=15, count=10)),
        ("FREQ=DAILY;UNTIL=20270301", Rule("daily", until=date(2027, 3, 1))),
        ("FREQ=DAILY;UNTIL=20270301T235959Z", Rule("daily", until=date(2027, 3, 1))),
        ("FREQ=WEEKLY;WKST=MO;", Rule(freq="weekly")),
        (
            {"freq": "weekly", "interval": 2, "weekdays": ["mon", "thu"], "count": 10},
            Rule("weekly", 2, ("mon", "thu"), count=10),
        ),
        (
            {"freq": "monthly", "month_day": -1, "until": "2027-03-01"},
            Rule("monthly", month_day=-1, until=date(2027, 3, 1)),
        ),
        ({"freq": "none"}, None),
        ({"freq": "daily", "interval": None, "weekdays": []}, Rule(freq="daily")),
        ({"rrule": "FREQ=MONTHLY;BYDAY=-1FR"}, Rule("monthly", rrule="FREQ=MONTHLY;BYDAY=-1FR")),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO"}, Rule("weekly", weekdays=("mon",))),
    ],
)
def test_parse_accepted_forms(value, expected):
    # given an accepted input, when parsed
    result = parse_rule(value)
    # then it gives the expected rule
    assert result == expected


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (None, "none"),
        (Rule("daily"), "daily"),
        (Rule("weekly", 2), "FREQ=WEEKLY;INTERVAL=2"),
        (Rule("weekly", 2, ("thu", "mon")), "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH"),
        (Rule("monthly", month_day=-1), "FREQ=MONTHLY;BYMONTHDAY=-1"),
        (Rule("yearly", count=5), "FREQ=YEARLY;COUNT=5"),
        (Rule("daily", until=date(2027, 3, 1)), "FREQ=DAILY;UNTIL=20270301"),
    ],
)
def test_rule_to_text_is_canonical(rule, text):
    assert rule_to_text(rule) == text


def test_rule_to_dict_is_json_safe_and_parses_back():
    # given a rule with every structured field
    rule = Rule("weekly", 2, ("mon", "thu"), until=date(2027, 3, 1))
    # when converted to a dict
    data = rule_to_dict(rule)
    # then it is plain JSON data that parses back to the same rule
    assert data == {
        "freq": "weekly",
        "interval": 2,
        "weekdays": ["mon", "thu"],
        "month_day": None,
        "until": "2027-03-01",
        "count": None,
        "rrule": None,
    }
    assert parse_rule(data) == rule
    assert rule_to_dict(None) is None


# --------------------------------------------------------------------------------------
# Parsing: errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FREQ=HOURLY", "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY (got 'HOURLY')"),
        ("INTERVAL=2", "FREQ is required"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a positive integer (got '0')"),
        ("FREQ=DAILY;INTERVAL=two", "INTERVAL must be a positive integer"),
        ("FREQ=DAILY;INTERVAL=1000", "INTERVAL must be at most 999"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY must be a comma-separated list of MO, TU"),
        ("FREQ=WEEKLY;BYDAY=-1FR", "BYDAY ordinals such as -1FR are only allowed"),
        ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY ordinal must be 1 to 5"),
        ("FREQ=DAILY;COUNT=5;UNTIL=20270101", "COUNT and UNTIL cannot be used together"),
        ("FREQ=DAILY;COUNT=0", "COUNT must be a positive integer"),
        ("FREQ=DAILY;UNTIL=2027-03-01", "UNTIL must be a date (YYYYMMDD)"),
        ("FREQ=DAILY;BYHOUR=9", "unsupported RRULE part BYHOUR"),
        ("FREQ=MONTHLY;BYSETPOS=-1", "unsupported RRULE part BYSETPOS"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given more than once"),
        ("FREQ=DAILY;oops", "malformed RRULE part 'oops'"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY values must be 1 to 31"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY cannot be used with FREQ=WEEKLY"),
        ("FREQ=YEARLY;BYMONTH=13", "BYMONTH values must be between 1 and 12"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "BYMONTHDAY and BYMONTH never match"),
        ("FREQ=WEEKLY;WKST=SU", "WKST must be MO"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1;BYDAY=3WE", "never match any date"),
        ("FREQ=YEARLY;BYMONTHDAY=1;BYDAY=20MO", "never match any date"),
        ("banana", "unrecognised recurrence 'banana'"),
        ("every 2 fortnights", "unrecognised recurrence"),
        ("every 0 days", "interval must be an integer between 1 and 999"),
        ("x" * 600, "recurrence text is too long"),
        (42, "recurrence must be a string, an object or null"),
        ({"freq": "weekly", "colour": "red"}, "unknown recurrence field(s): colour"),
        ({"interval": 2}, "freq is required"),
        ({"freq": "hourly"}, "freq must be one of none, daily, weekly, monthly, yearly"),
        ({"freq": "daily", "interval": "2"}, "interval must be an integer between 1 and 999"),
        ({"freq": "monthly", "weekdays": ["mon"]}, "weekdays are only allowed with freq 'weekly'"),
        ({"freq": "weekly", "weekdays": ["xyz"]}, "weekdays must be a list of mon, tue"),
        ({"freq": "weekly", "month_day": 3}, "month_day is only allowed with freq 'monthly'"),
        ({"freq": "monthly", "month_day": 0}, "month_day must be 1 to 31, or -1"),
        ({"freq": "daily", "until": "01/03/2027"}, "until must be a date (YYYY-MM-DD)"),
        ({"freq": "daily", "count": 10001}, "count must be an integer between 1 and 10000"),
        ({"freq": "daily", "count": 2, "until": "2027-01-01"}, "count and until cannot be used"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=-1FR", "freq": "daily"}, "freq does not match rrule"),
    ],
)
def test_parse_errors_name_the_problem(value, message):
    # given an invalid rule, when parsed
    with pytest.raises(RecurrenceError) as caught:
        parse_rule(value)
    # then the error says what is wrong
    assert message in str(caught.value)
    assert caught.value.message == str(caught.value)
    assert caught.value.code == "invalid_recurrence"


def test_rule_constructor_rejects_rrule_that_fields_can_express():
    with pytest.raises(RecurrenceError, match="rrule is only for rules"):
        Rule("weekly", rrule="FREQ=WEEKLY;BYDAY=MO")


# --------------------------------------------------------------------------------------
# Time zones and argument checks
# --------------------------------------------------------------------------------------


def test_validate_timezone():
    assert validate_timezone("Europe/London") == "Europe/London"
    for bad in ["Mars/Olympus_Mons", "", "../etc/passwd", "localtime", None]:
        with pytest.raises(RecurrenceError) as caught:
            validate_timezone(bad)
        assert caught.value.code == "invalid_timezone"


def test_unknown_timezone_is_rejected_by_occurrence_functions():
    anchor = at(LONDON, 2024, 1, 1, 9, 0)
    with pytest.raises(RecurrenceError) as caught:
        next_occurrence(Rule("daily"), anchor=anchor, tz="Europe/Londn", after=anchor)
    assert caught.value.code == "invalid_timezone"
    assert "Europe/Londn" in caught.value.message


def test_naive_datetimes_are_rejected():
    anchor = at(LONDON, 2024, 1, 1, 9, 0)
    with pytest.raises(ValueError, match="anchor must be timezone-aware"):
        occurrence(Rule("daily"), anchor=datetime(2024, 1, 1), tz=LONDON, index=1)
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        next_occurrence(Rule("daily"), anchor=anchor, tz=LONDON, after=datetime(2024, 1, 1))


# --------------------------------------------------------------------------------------
# Far future
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "anchor", "expected_local", "expected_index"),
    [
        # 3804 days from 2020-01-01 to 2030-06-01; 09:00 that day is before `after`
        ("daily", (2020, 1, 1, 9, 0), (2030, 6, 2, 9, 0), 3805),
        # weekly Mon/Thu: 2020-01-02 is a Thursday; 2030-06-03 is a Monday
        ("every mon and thu", (2020, 1, 2, 9, 0), (2030, 6, 3, 9, 0), 1087),
        ("monthly", (2020, 1, 31, 9, 0), (2030, 6, 30, 9, 0), 125),
        ({"freq": "monthly", "month_day": 31}, (2020, 1, 31, 9, 0), (2030, 7, 31, 9, 0), 73),
        ({"freq": "monthly", "month_day": 29}, (2020, 1, 29, 9, 0), (2030, 6, 29, 9, 0), 117),
        ("yearly", (2020, 2, 29, 9, 0), (2031, 2, 28, 9, 0), 11),
        ("FREQ=MONTHLY;BYDAY=-1FR", (2020, 1, 31, 9, 0), (2030, 6, 28, 9, 0), 125),
    ],
)
def test_next_occurrence_far_in_the_future(rule, anchor, expected_local, expected_index):
    # given a series anchored in 2020
    rule = parse_rule(rule)
    start = at(LONDON, *anchor)
    # when we ask for the first occurrence after 2030-06-01
    when, index = next_occurrence(rule, anchor=start, tz=LONDON, after=at(LONDON, 2030, 6, 1, 12))
    # then the date and index are right and agree with occurrence()
    assert when == at(LONDON, *expected_local).astimezone(UTC)
    assert index == expected_index
    assert occurrence(rule, anchor=start, tz=LONDON, index=index) == when
    assert occurrence(rule, anchor=start, tz=LONDON, index=index - 1) <= at(LONDON, 2030, 6, 1, 12)


@pytest.mark.parametrize(
    "rule",
    ["daily", "every mon and thu", "monthly", "yearly", "last day of month",
     {"freq": "monthly", "month_day": 30}],
)  # fmt: skip
def test_next_occurrence_millennia_later_is_fast(rule):
    # given a series anchored in 2020
    rule = parse_rule(rule)
    anchor = at(LONDON, 2020, 1, 30, 9, 0)
    after = at(LONDON, 9000, 6, 1, 0, 0)
    # when we ask about the year 9000 (millions of daily steps away)
    started = time.perf_counter()
    when, index = next_occurrence(rule, anchor=anchor, tz=LONDON, after=after)
    elapsed = time.perf_counter() - started
    # then the answer comes at once and is a real occurrence
    assert elapsed < 0.2
    assert when > after
    assert occurrence(rule, anchor=anchor, tz=LONDON, index=index) == when
    assert occurrence(rule, anchor=anchor, tz=LONDON, index=index - 1) <= after


def test_late_completion_continues_after_now_without_backlog():
    # given a daily series whose instance from 10 days ago was completed only now
    rule = parse_rule("daily")
    anchor = at(LONDON, 2024, 3, 1, 9, 0)
    previous_due = at(LONDON, 2024, 3, 5, 9, 0)
    now = at(LONDON, 2024, 3, 15, 10, 0)
    # when the next instance is computed the way the consumer does it
    when, index = next_occurrence(rule, anchor=anchor, tz=LONDON, after=max(previous_due, now))
    # then it is the first occurrence after now
    assert (when, index) == (at(LONDON, 2024, 3, 16, 9, 0).astimezone(UTC), 15)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    LONDON,
    NEW_YORK,
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # DST changes at midnight
    "Asia/Kolkata",
    "Pacific/Apia",  # skipped a whole day in December 2011
]

ends = st.one_of(
    st.just({}),
    st.builds(lambda d: {"until": d}, st.dates(date(2000, 1, 1), date(2060, 12, 31))),
    st.builds(lambda n: {"count": n}, st.integers(1, 10000)),
)


@st.composite
def structured_rules(draw, max_interval=999):
    freq = draw(st.sampled_from(["daily", "weekly", "monthly", "yearly"]))
    fields = {"freq": freq, "interval": draw(st.integers(1, max_interval))}
    if freq == "weekly":
        fields["weekdays"] = tuple(draw(st.sets(st.sampled_from(WEEKDAYS))))
    if freq == "monthly":
        fields["month_day"] = draw(st.none() | st.just(-1) | st.integers(1, 31))
    fields.update(draw(ends))
    return Rule(**fields)


RRULE_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def rrule_specs(draw, max_interval=999, with_end=True):
    """(parsed rule, the parts it was written from) for random RRULE text."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    spec = {"freq": freq, "interval": 1, "bymonth": [], "bymonthday": [], "byday": []}
    items = [f"FREQ={freq}"]
    if draw(st.booleans()):
        spec["interval"] = draw(st.integers(1, max_interval))
        items.append(f"INTERVAL={spec['interval']}")
    if draw(st.booleans()):
        spec["bymonth"] = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
        items.append("BYMONTH=" + ",".join(map(str, spec["bymonth"])))
    if freq != "WEEKLY" and draw(st.booleans()):
        days = st.integers(1, 31) | st.integers(-31, -1)
        spec["bymonthday"] = draw(st.lists(days, min_size=1, max_size=3))
        items.append("BYMONTHDAY=" + ",".join(map(str, spec["bymonthday"])))
    if draw(st.booleans()):
        ordinals = st.just(0)
        if freq == "MONTHLY" or (freq == "YEARLY" and spec["bymonth"]):
            ordinals = st.sampled_from([0, 1, 2, 5, -1, -2])
        elif freq == "YEARLY":
            ordinals = st.sampled_from([0, 1, 2, 20, -1, -53])
        codes = st.tuples(ordinals, st.integers(0, 6))
        spec["byday"] = draw(st.lists(codes, min_size=1, max_size=3))
        written = [
            f"{'+' if n > 0 and draw(st.booleans()) else ''}{n or ''}" for n, _ in spec["byday"]
        ]
        items.append(
            "BYDAY="
            + ",".join(w + RRULE_DAYS[d] for w, (_, d) in zip(written, spec["byday"], strict=True))
        )
    end = draw(ends) if with_end else {}
    if "until" in end:
        items.append(f"UNTIL={end['until']:%Y%m%d}")
    if "count" in end:
        items.append(f"COUNT={end['count']}")
    text = ";".join(draw(st.permutations(items)))
    try:
        return parse_rule(text), spec
    except RecurrenceError:
        assume(False)


def rrule_rules(max_interval=999):
    return rrule_specs(max_interval).map(lambda pair: pair[0])


any_rule = structured_rules() | rrule_rules()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(any_rule)
def test_text_and_dict_round_trip(rule):
    # given any valid rule, when converted to text or a dict and parsed back
    text = rule_to_text(rule)
    # then the same rule comes back, and the text is stable
    assert parse_rule(text) == rule
    assert rule_to_text(parse_rule(text)) == text
    assert parse_rule(rule_to_dict(rule)) == rule


@st.composite
def series(draw, rules):
    rule = draw(rules)
    tz = draw(st.sampled_from(ZONES))
    naive = draw(st.datetimes(datetime(2005, 1, 1), datetime(2035, 12, 31)))
    anchor = naive.replace(tzinfo=ZoneInfo(tz), fold=draw(st.integers(0, 1)))
    return rule, anchor, tz


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    series(structured_rules(max_interval=40) | rrule_rules(max_interval=3)),
    st.timedeltas(timedelta(days=-30), timedelta(days=365 * 3)),
)
def test_next_occurrence_is_the_first_occurrence_after(data, offset):
    # given a series and a moment around it
    rule, anchor, tz = data
    after = anchor + offset
    # when we ask for the next occurrence
    result = next_occurrence(rule, anchor=anchor, tz=tz, after=after)
    if result is None:
        # then either the series has ended (or never matches again) before `after`...
        can_end = rule.count or rule.until or rule.rrule or (rule.month_day or 0) > 28
        assert can_end
        return
    when, index = result
    # ...or it is strictly later, it is occurrence `index`, and the one before is not later
    assert when > after
    assert when.tzinfo is UTC
    assert occurrence(rule, anchor=anchor, tz=tz, index=index) == when
    if index > 0:
        assert occurrence(rule, anchor=anchor, tz=tz, index=index - 1) <= after


def _reference_dates(rule, anchor, tz, n):
    """Independent reference: dateutil for RFC-style rules, plain arithmetic for clamping."""
    start = anchor.astimezone(ZoneInfo(tz)).date()
    if rule.freq in ("monthly", "yearly") and rule.month_day is None:
        months = 1 if rule.freq == "monthly" else 12
        dates = []
        for k in range(n):
            total = start.year * 12 + start.month - 1 + k * rule.interval * months
            year, month = divmod(total, 12)
            if year > 9999:
                break
            day = min(start.day, calendar.monthrange(year, month + 1)[1])
            dates.append(date(year, month + 1, day))
        return dates
    freq = {"daily": du.DAILY, "weekly": du.WEEKLY, "monthly": du.MONTHLY}[rule.freq]
    days = [WEEKDAYS.index(d) for d in rule.weekdays] or None
    reference = du.rrule(
        freq,
        dtstart=datetime.combine(start, datetime.min.time()),
        interval=rule.interval,
        wkst=du.MO,
        byweekday=days,
        bymonthday=rule.month_day,
    )
    later = [d.date() for d in reference.xafter(datetime.combine(start, datetime.max.time()), n)]
    return [start, *later][:n]


@settings(max_examples=150, deadline=None)
@given(
    series(
        structured_rules(max_interval=30).map(
            lambda r: Rule(r.freq, r.interval, r.weekdays, r.month_day)
        )
    )
)
def test_arithmetic_matches_reference_expansion(data):
    # given a structured rule without an end
    rule, anchor, tz = data
    # when we list its first occurrences
    n = 25
    dates = [d for d in local_dates(rule, anchor, tz, n) if d is not None]
    # then they match an independent expansion (dateutil, or month-end clamping)
    expected = _reference_dates(rule, anchor, tz, n)
    # (a wall-clock time in a gap can move the local date forward; compare dates only
    # where the UTC conversion kept the date)
    assert len(dates) == len(expected)
    for got, want in zip(dates, expected, strict=True):
        assert got == want or got == want + timedelta(days=1)


def _reference_rrule_match(spec, day, start):
    """Day-by-day RFC 5545 membership test for the supported subset (test reference)."""
    freq, n = spec["freq"], spec["interval"]
    if freq == "DAILY":
        step = (day - start).days
    elif freq == "WEEKLY":
        step = ((day - timedelta(day.weekday())) - (start - timedelta(start.weekday()))).days // 7
    elif freq == "MONTHLY":
        step = (day.year - start.year) * 12 + day.month - start.month
    else:
        step = day.year - start.year
    if step % n or (spec["bymonth"] and day.month not in spec["bymonth"]):
        return False
    if freq == "WEEKLY":
        return day.weekday() in ({d for _, d in spec["byday"]} or {start.weekday()})
    length = calendar.monthrange(day.year, day.month)[1]
    if not spec["bymonthday"] and not spec["byday"]:
        if freq == "DAILY":
            return True
        if spec["bymonth"]:
            return day.day == start.day
        # plain FREQ=MONTHLY / FREQ=YEARLY are the simple forms, which clamp to the month end
        if freq == "YEARLY" and day.month != start.month:
            return False
        return day.day == min(start.day, length)
    if spec["bymonthday"] and not any(
        m == day.day or length + 1 + m == day.day for m in spec["bymonthday"]
    ):
        return False
    if spec["byday"]:
        if freq == "YEARLY" and not spec["bymonth"]:
            span = [
                date(day.year, 1, 1) + timedelta(i) for i in range(365 + calendar.isleap(day.year))
            ]
        else:
            span = [day.replace(day=i) for i in range(1, length + 1)]
        same = [d for d in span if d.weekday() == day.weekday()]
        position = same.index(day)
        return any(
            weekday == day.weekday() and (n == 0 or position == (n - 1 if n > 0 else len(same) + n))
            for n, weekday in spec["byday"]
        )
    return True


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(rrule_specs(max_interval=4, with_end=False), st.dates(date(2005, 1, 1), date(2035, 12, 31)))
def test_rrule_expansion_matches_day_by_day_reference(pair, start):
    # given an RRULE rule and an anchor date
    rule, spec = pair
    anchor = datetime.combine(start, datetime.min.time()).replace(hour=9, tzinfo=UTC)
    # when we list its occurrences over the next three years
    window_end = start + timedelta(days=3 * 366)
    expected, day = [], start + timedelta(days=1)
    while day <= window_end and len(expected) < 30:
        if _reference_rrule_match(spec, day, start):
            expected.append(day)
        day += timedelta(days=1)
    got = [occurrence(rule, anchor=anchor, tz="UTC", index=i) for i in range(1, len(expected) + 1)]
    # then they are exactly the reference's matching days, and nothing else is in the window
    assert [when.date() for when in got if when is not None] == expected
    if len(expected) < 30:
        extra = occurrence(rule, anchor=anchor, tz="UTC", index=len(expected) + 1)
        assert extra is None or extra.date() > window_end


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("FREQ=DAILY;UNTIL=00010101", date(1, 1, 1)),
        ("FREQ=MONTHLY;BYDAY=-1FR;UNTIL=09991231", date(999, 12, 31)),
        ("FREQ=WEEKLY;UNTIL=20310301T120000Z", date(2031, 3, 1)),
    ],
)
def test_until_is_written_with_a_four_digit_year_and_reads_back(text, until):
    """Regression: strftime's %Y wrote year 1 as "1", so UNTIL=00010101 was stored as
    UNTIL=10101, which no longer parses."""
    canonical = rule_to_text(parse_rule(text))

    assert canonical.endswith(f"UNTIL={until.year:04d}{until.month:02d}{until.day:02d}")
    assert parse_rule(canonical).until == until
    assert rule_to_text(parse_rule(canonical)) == canonical


@pytest.mark.parametrize("blank", ["\x1f", "\u3000", "\x85"])
def test_list_values_with_any_blank_around_them_parse(blank):
    """Regression: int() strips fewer blanks than str.strip(), so BYMONTHDAY= U+001F 31 was a
    ValueError (a 500) instead of 31."""
    rule = parse_rule(f"FREQ=YEARLY;BYMONTH={blank}2{blank},3;BYMONTHDAY={blank}31,{blank}1")

    assert rule_to_text(rule) == "FREQ=YEARLY;BYMONTH=2,3;BYMONTHDAY=1,31"


# --- following_instances: the one source of a series' next due times ------------------------


def _position(rule, due, *, index=0, anchor=None, anchor_index=0, tz="UTC", repeat_from="due"):
    return SeriesPosition(
        rule=parse_rule(rule),
        tz=tz,
        anchor=anchor or due,
        anchor_index=anchor_index,
        due_at=due,
        index=index,
        repeat_from=repeat_from,
    )


def _first(position, closed_at, now=None):
    found = following_instances(position, closed_at=closed_at, now=now or closed_at)
    return next(found, None)


def test_following_an_occurrence_moved_alone_keeps_to_the_rule():
    anchor = datetime(2031, 6, 2, 10, tzinfo=UTC)  # a Monday, weekly
    moved = datetime(2031, 6, 4, 15, tzinfo=UTC)  # this week's occurrence on Wednesday
    position = _position("weekly", moved, anchor=anchor)
    following = _first(position, closed_at=moved, now=datetime(2031, 6, 1, tzinfo=UTC))
    assert (following.due_at, following.index) == (datetime(2031, 6, 9, 10, tzinfo=UTC), 1)
    assert following.anchor == anchor


def test_following_from_completion_restarts_on_the_day_done_at_the_due_time():
    tz = "America/New_York"
    due = datetime(2031, 3, 3, 8, 30, tzinfo=ZoneInfo(tz))  # a Monday, before DST
    position = _position("every mon and thu", due, index=4, tz=tz, repeat_from="completion")
    # done on Tuesday evening after the clocks went forward (March 9)
    following = _first(position, closed_at=datetime(2031, 3, 11, 23, 0, tzinfo=ZoneInfo(tz)))
    # Thursday, 08:30 EDT
    assert following.due_at == datetime(2031, 3, 13, 12, 30, tzinfo=UTC)
    assert (following.index, following.anchor_index) == (5, 4)


def test_following_from_completion_still_ends_at_count():
    due = datetime(2031, 1, 1, 9, tzinfo=UTC)
    last = _position("FREQ=DAILY;COUNT=3", due, index=2, repeat_from="completion")
    assert _first(last, closed_at=due) is None
    second = _position("FREQ=DAILY;COUNT=3", due, index=1, repeat_from="completion")
    assert _first(second, closed_at=due).index == 2


def test_following_never_lands_on_the_closed_instances_own_time():
    anchor = datetime(2031, 6, 2, 10, tzinfo=UTC)
    moved_onto_the_next = datetime(2031, 6, 3, 10, tzinfo=UTC)
    position = _position("daily", moved_onto_the_next, anchor=anchor)
    following = _first(position, closed_at=anchor, now=datetime(2031, 6, 1, tzinfo=UTC))
    assert (following.due_at, following.index) == (datetime(2031, 6, 4, 10, tzinfo=UTC), 2)


def test_series_dues_count_from_the_first_occurrence_whatever_the_anchor():
    rule = parse_rule("FREQ=DAILY;COUNT=5")
    anchor = datetime(2031, 1, 10, 9, tzinfo=UTC)
    dues = list(series_dues(rule, anchor=anchor, tz="UTC", after=anchor, anchor_index=3))
    assert dues == [(datetime(2031, 1, 11, 9, tzinfo=UTC), 4)]
