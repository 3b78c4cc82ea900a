"""The text forms the API accepts: each published pattern (the OpenAPI schema carries them) and
the server's own checks accept the same strings, and the MCP tools hold their arguments to the
same types as REST."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks import validation
from tasks.errors import TaskValidationError
from tasks.recurrence_rules import parse_rule

FAR = datetime(2031, 6, 1, 9, tzinfo=UTC)
# What the recurrence pattern cannot say: a rule that contradicts itself. The API documents
# these as 400 ``invalid_recurrence`` for input the schema allows.
CONTRADICTIONS = re.compile(
    "is given more than once|COUNT and UNTIL cannot be used together|BYDAY ordinals such as "
    "|BYDAY ordinal must be|BYMONTHDAY cannot be used with FREQ=WEEKLY|never match"
)
EXAMPLES = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def test_the_spelled_out_blanks_are_exactly_what_python_strips():
    blank = re.compile(f"[{validation._BLANK_CHARS}]")

    differ = [c for c in range(0x110000) if bool(blank.fullmatch(chr(c))) != chr(c).isspace()]

    assert differ == []
    assert "\\s" not in validation.RECURRENCE_TEXT_PATTERN + validation.REMINDER_PATTERN


@EXAMPLES
@given(text=st.from_regex(validation.RECURRENCE_TEXT_PATTERN, fullmatch=True))
def test_every_rule_the_pattern_allows_is_accepted_unless_it_contradicts_itself(text):
    if len(text) > validation.RECURRENCE_MAX_LENGTH:
        return
    try:
        validation.clean_recurrence(text)
    except TaskValidationError as exc:
        assert exc.code == "invalid_recurrence"
        assert CONTRADICTIONS.search(exc.message), (text, exc.message)


@EXAMPLES
@given(text=st.from_regex(validation.REMINDER_PATTERN, fullmatch=True))
def test_every_reminder_the_pattern_allows_is_accepted(text):
    validation.clean_reminder(text, due_at=FAR, tz_name="Europe/Paris")


@EXAMPLES
@given(text=st.from_regex(validation.DUE_PATTERN, fullmatch=True))
def test_every_due_date_the_pattern_allows_is_accepted(text):
    validation.clean_due(text, tz_name="Pacific/Kiritimati")


@pytest.mark.parametrize(
    "text",
    [
        "every mon,andthu",  # the parser splits "and" out of "andthu"
        "FREQ=DAILY;WK\u017fT=MO",  # a long s, which upper() turns into S
        "FREQ=WEEKLY;BYDAY=\u017fu",
    ],
)
def test_spellings_outside_the_pattern_are_refused_even_where_the_parser_is_lenient(text):
    assert parse_rule(text) is not None
    with pytest.raises(TaskValidationError) as refused:
        validation.clean_recurrence(text)

    assert (refused.value.field, refused.value.code) == ("recurrence_pattern", "invalid_recurrence")


@pytest.mark.parametrize(
    "value",
    [
        {"freq": "Daily"},
        {"freq": " daily"},
        {"freq": "weekly", "weekdays": ["monday"]},
        {"freq": "daily", "until": " 2031-06-01"},
        {"freq": "daily", "until": "20310601"},
        {"rrule": "FREQ=DAILY;WK\u017fT=MO"},
    ],
)
def test_the_object_form_takes_exactly_the_documented_values(value):
    with pytest.raises(TaskValidationError) as refused:
        validation.clean_recurrence(value)

    assert refused.value.code == "invalid_recurrence"


def test_the_object_form_still_takes_what_the_api_returns():
    rule = validation.clean_recurrence(
        {
            "freq": "weekly",
            "interval": 2,
            "weekdays": ["mon", "thu"],
            "month_day": None,
            "until": "2031-12-31",
            "count": None,
            "rrule": None,
        }
    )

    assert validation.recurrence_text(rule) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20311231"


@pytest.mark.parametrize(("unit", "size"), [("m", 1), ("h", 60), ("d", 1440), ("w", 10080)])
def test_a_reminder_offset_matches_the_pattern_exactly_when_it_is_at_most_52_weeks(unit, size):
    pattern = re.compile(validation.REMINDER_PATTERN)
    limit = validation.MAX_REMINDER_OFFSET

    wrong = [
        text
        for amount in range(10000)
        for text in {f"{amount}{unit}", f"{amount:04d}{unit}"}
        if bool(pattern.match(text)) != (timedelta(minutes=amount * size) <= limit)
    ]

    assert wrong == []


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("2028-02-29", True),
        ("2000-02-29T09:00", True),
        ("2031-02-29", False),
        ("2100-02-29", False),
        ("1900-01-01 00:00:00.123456+14:00", True),
        ("9000-12-31T23:59:59Z", True),
        ("1899-12-31", False),
        ("9001-01-01", False),
        ("2031-1-5", False),
        ("2031-W01-1", False),
        ("20310105T090000", False),
        ("2031-01-05T09", False),
        ("2031-01-05t09:00z", False),
        ("2031-01-05T24:00", False),
        ("\u06f2\u06f0\u06f3\u06f1-01-05", False),
    ],
)
def test_dates_are_iso_8601_in_the_published_forms_only(text, accepted):
    assert bool(re.match(validation.DUE_PATTERN, text)) == accepted
    if accepted:
        assert validation.clean_due(text, tz_name="UTC") is not None
    else:
        with pytest.raises(TaskValidationError) as refused:
            validation.clean_due(text, tz_name="UTC")
        assert refused.value.code == "invalid_datetime"


@pytest.mark.parametrize("value", [" UTC", "utc", "localtime", "Europe/Paris "])
def test_a_time_zone_is_an_exact_iana_name(value):
    with pytest.raises(TaskValidationError) as refused:
        validation.clean_timezone(value)

    assert refused.value.code == "invalid_timezone"


@pytest.mark.parametrize(
    ("tool", "argument"),
    [
        ("complete_task", "task_id"),
        ("delete_task", "task_id"),
        ("update_task", "task_id"),
        ("list_tasks", "limit"),
        ("list_tasks", "offset"),
    ],
)
@pytest.mark.parametrize("value", ["5", True, 5.0])
def test_mcp_integer_arguments_are_json_integers_as_rest_s_are(tool, argument, value):
    """Regression: the tools took "5", 5.0 and true (as 1) where REST refuses them."""
    from tasks.mcp.server import TOOLS

    metadata = TOOLS[tool].fn_metadata
    # What the SDK runs on a call's arguments before the tool.
    with pytest.raises(ValidationError) as refused:
        metadata.arg_model.model_validate(metadata.pre_parse_json({argument: value}))

    assert argument in {error["loc"][0] for error in refused.value.errors()}
    assert metadata.arg_model.model_validate({argument: 5}).model_dump()[argument] == 5
