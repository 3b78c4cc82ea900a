"""Argument and result types of the MCP tools.

The argument types carry the limits the JSON Schemas advertise (and the SDK enforces before a
tool runs); the services then apply the same rules REST goes through. The result types become
the tools' output schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from typing_extensions import TypedDict

from core.users import USER_ID_MAX_LENGTH
from tasks.models import (
    DESCRIPTION_MAX_LENGTH,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TAGS,
    PRIORITY_LABELS,
    RECURRENCE_MAX_LENGTH,
    SEARCH_MAX_LENGTH,
    STATUS_FILTERS,
    TAG_MAX_LENGTH,
    TIMEZONE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    WHEN_TEXT_MAX_LENGTH,
)
from tasks.models import Status as TaskStatus
from tasks.selectors import ORDERINGS

MAX_TASK_ID = 2**63 - 1

# Phase III statuses first; ``complete``/``incomplete`` are accepted synonyms.
STATUS_SYNONYMS = {"complete": TaskStatus.COMPLETED.value, "incomplete": TaskStatus.PENDING.value}
LIST_STATUSES = (*STATUS_FILTERS, *STATUS_SYNONYMS)
# Phase III's windows: "none" (no due date) is a REST filter only.
DUE_DATE_FILTERS = tuple(window for window in DUE_WINDOWS if window != "none")
# Relevance is what a search sorts by without sort_by; updated_at is a REST ordering only.
SORT_FIELDS = tuple(sorted(set(ORDERINGS) - {"relevance", "updated_at"}))
SORT_ORDERS = ("asc", "desc")


def _folded(value: object) -> object:
    """Enum values are matched without regard to case or surrounding blanks."""
    return value.strip().lower() if isinstance(value, str) else value


def _choice(values: tuple[str, ...]):
    return Annotated[Literal[values], BeforeValidator(_folded)]  # type: ignore[valid-type]


_WhenText = Annotated[str, Field(max_length=WHEN_TEXT_MAX_LENGTH)]


def _no_nul(value: str) -> str:
    """PostgreSQL cannot hold NUL in text; refuse it here rather than fail in the query."""
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")
    return value


_NoNul = AfterValidator(_no_nul)

UserId = Annotated[
    Annotated[str, Field(max_length=USER_ID_MAX_LENGTH)] | None,
    Field(
        description="The user the call is for. Optional: the bearer token says who the user is, "
        "and a different user_id is refused."
    ),
]
# Integers are strict, as REST's are: "5", 5.0 and true are refused, not turned into 5 or 1.
TaskId = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_TASK_ID,
        description="The task's id (task_id from add_task/list_tasks).",
    ),
]
Title = Annotated[
    str,
    Field(min_length=1, max_length=TITLE_MAX_LENGTH, description="What has to be done."),
]
NewTitle = Annotated[
    Annotated[str, Field(min_length=1, max_length=TITLE_MAX_LENGTH)] | None,
    Field(description="A new title."),
]
Description = Annotated[
    Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH)] | None,
    Field(description="Details. In update_task an empty string removes the description."),
]
Priority = Annotated[
    _choice(PRIORITY_LABELS) | None,
    Field(description="low, medium (the default for a new task), high or urgent."),
]
Tags = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH)]] | None,
    Field(
        max_length=MAX_TAGS,
        description=f"Labels, at most {MAX_TAGS}, each at most {TAG_MAX_LENGTH} characters; "
        "duplicates that differ only in case are merged. In update_task the list replaces the "
        "task's tags ([] removes them all).",
    ),
]
DueDate = Annotated[
    Annotated[_WhenText, Field(json_schema_extra={"format": "date-time"})] | None,
    Field(
        description="ISO 8601, e.g. 2026-12-01T09:00:00Z. A time without an offset is wall-clock "
        "time in the task's time zone; a bare date (2026-12-01) means the end of that day. "
        "In update_task an empty string removes the due date."
    ),
]
RecurrencePattern = Annotated[
    Annotated[str, Field(max_length=RECURRENCE_MAX_LENGTH)] | None,
    Field(
        description="none, daily, weekly, monthly, yearly, a phrase such as 'every 2 weeks', or "
        "an RFC 5545 RRULE such as FREQ=MONTHLY;BYDAY=-1FR. A recurring task needs a due date; "
        "completing it creates the next one."
    ),
]
ReminderTime = Annotated[
    _WhenText | None,
    Field(
        description="When to remind: before the due date as 30m, 1h, 2d or 1w, or an absolute "
        "ISO 8601 time. In update_task an empty string removes the reminder."
    ),
]
TimeZone = Annotated[
    Annotated[str, Field(max_length=TIMEZONE_MAX_LENGTH)] | None,
    Field(
        description="IANA time zone such as Europe/Paris (default UTC): how times without an "
        "offset are read, and where 'today' and 'this week' are."
    ),
]
Status = Annotated[
    _choice(LIST_STATUSES) | None,
    Field(description="all (default), pending or completed; incomplete/complete also work."),
]
Search = Annotated[
    Annotated[str, Field(max_length=SEARCH_MAX_LENGTH), _NoNul] | None,
    Field(
        description="Words to find in title, description and tags (web-search syntax: quotes, "
        "or, -word); the last word also matches as a prefix."
    ),
]
PriorityFilter = Annotated[
    _choice(PRIORITY_LABELS) | None, Field(description="Only this priority.")
]
TagsFilter = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH), _NoNul]] | None,
    Field(max_length=MAX_TAGS, description="Only tasks that have all these tags (any case)."),
]
DueDateFilter = Annotated[
    _choice(DUE_DATE_FILTERS) | None,
    Field(description="overdue (past due, not completed), today, this_week or this_month."),
]
SortBy = Annotated[
    _choice(SORT_FIELDS) | None,
    Field(description="Default: best match when searching, otherwise newest first."),
]
SortOrder = Annotated[
    _choice(SORT_ORDERS) | None,
    Field(
        description="Default per field: created_at newest first, priority most urgent first, "
        "due_date soonest first, title A-Z, status pending first."
    ),
]
Limit = Annotated[
    int, Field(strict=True, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
]
Offset = Annotated[
    int, Field(strict=True, ge=0, le=MAX_OFFSET, description="Tasks to skip (paging).")
]


class TaskData(TypedDict):
    """A task, as ``tasks.representation.task_to_dict`` writes it."""

    id: int
    title: str
    description: str
    completed: bool
    completed_at: str | None
    priority: Literal[PRIORITY_LABELS]  # type: ignore[valid-type]
    tags: list[str]
    due_date: str | None
    reminder_time: str | None
    remind_at: str | None
    recurrence_pattern: str
    series_id: str | None
    series_index: int
    timezone: str
    created_at: str
    updated_at: str
    version: int


TASK_FIELDS = tuple(TaskData.__annotations__)


# A listed task is described by its keys only: clients check every result against the output
# schema, and checking the type of every field of 100 tasks (through a $ref each) costs them
# more than the query itself. add_task's output schema types every field.
LISTED_TASK_SCHEMA = {
    "type": "object",
    "description": "A task: task_id plus every task field, typed as in add_task's result.",
    "required": ["task_id", *TASK_FIELDS],
}


class AddTaskResult(TaskData):
    task_id: int
    status: Literal["created"]


class UpdateTaskResult(TaskData):
    task_id: int
    status: Literal["updated"]
    updated_fields: list[str]


class CompleteTaskResult(TypedDict):
    task_id: int
    status: Literal["completed"]
    title: str


class DeleteTaskResult(TypedDict):
    task_id: int
    status: Literal["deleted"]
    title: str


class ListTasksResult(TypedDict):
    tasks: Annotated[
        list[dict[str, Any]], WithJsonSchema({"type": "array", "items": LISTED_TASK_SCHEMA})
    ]
    total_count: int
    limit: int
    offset: int
