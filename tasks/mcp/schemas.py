"""Argument and result types of the MCP tools.

The argument types carry the limits the JSON Schemas advertise (and the SDK enforces before a
tool runs); the services then apply the same rules REST goes through. The result types become
the tools' output schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict

from core.users import USER_ID_MAX_LENGTH
from tasks.api.changes import DEFAULT_CHANGES, MAX_CHANGES
from tasks.api.history import MAX_LIMIT as HISTORY_MAX_LIMIT
from tasks.api.serializers import MAX_ORDERING_TERMS
from tasks.models import (
    APPLY_TO_CHOICES,
    DEFAULT_OCCURRENCES,
    DESCRIPTION_MAX_LENGTH,
    DUE_WINDOWS,
    MAX_LIMIT,
    MAX_OCCURRENCES,
    MAX_OFFSET,
    MAX_TAGS,
    PRIORITY_LABELS,
    RECURRENCE_MAX_LENGTH,
    SEARCH_MAX_LENGTH,
    STATUS_FILTERS,
    TAG_MATCH_MODES,
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
# REST's ``ordering`` terms: a field name, "-" before it for descending.
ORDERING_TERMS = tuple(term for name in ORDERINGS for term in (name, f"-{name}"))
CURSOR_MAX_LENGTH = 512


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


def _one_priority_or_many(value: object) -> object:
    """One priority stands for a list of one (and is refused under its own name)."""
    if not isinstance(value, str):
        return value
    if _folded(value) not in PRIORITY_LABELS:
        raise ValueError(
            "should be " + ", ".join(f"'{label}'" for label in PRIORITY_LABELS) + ", or a list"
        )
    return [value]


_PRIORITY_ENUM = {"type": "string", "enum": list(PRIORITY_LABELS)}
PriorityFilter = Annotated[
    Annotated[
        list[_choice(PRIORITY_LABELS)],
        Field(min_length=1, max_length=len(PRIORITY_LABELS)),
        BeforeValidator(_one_priority_or_many),
    ]
    | None,
    WithJsonSchema(
        {
            "anyOf": [
                _PRIORITY_ENUM,
                {
                    "type": "array",
                    "items": _PRIORITY_ENUM,
                    "minItems": 1,
                    "maxItems": len(PRIORITY_LABELS),
                },
                {"type": "null"},
            ],
            "default": None,
            "description": "Only this priority, or any of a list of them (['high', 'urgent']).",
        }
    ),
]
TagsFilter = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH), _NoNul]] | None,
    Field(
        max_length=MAX_TAGS,
        description="Only tasks that have these tags (any case): all of them, or any of them "
        "with tags_mode=any.",
    ),
]
TagsMode = Annotated[
    _choice(TAG_MATCH_MODES) | None,
    Field(description="all (default): a task needs every tag in tags; any: one is enough."),
]
DueBound = Annotated[
    Annotated[_WhenText, Field(json_schema_extra={"format": "date-time"}), _NoNul] | None,
    Field(
        description="ISO 8601 date or date-time; without an offset it is read in timezone, a "
        "bare date is the start of that day. due_before is exclusive, due_after inclusive."
    ),
]
DueWindow = Annotated[
    _choice(DUE_WINDOWS) | None,
    Field(
        description="overdue, today, this_week, this_month (in timezone), or none (no due date). "
        "The same as due_date_filter, plus none; give one of the two."
    ),
]
Ordering = Annotated[
    list[_choice(ORDERING_TERMS)] | None,
    Field(
        min_length=1,
        max_length=MAX_ORDERING_TERMS,
        description="REST's ordering: field names, '-' before one for descending, e.g. "
        "['-priority', 'due_date']. Instead of sort_by/sort_order.",
    ),
]
Cursor = Annotated[
    Annotated[str, Field(min_length=1, max_length=CURSOR_MAX_LENGTH)] | None,
    Field(
        description="next_cursor from the previous page of the same query: the next page. "
        "Instead of offset."
    ),
]
StopSeries = Annotated[
    bool,
    Field(strict=True, description="Also end the task's recurring series (no next occurrence)."),
]
HistoryLimit = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=HISTORY_MAX_LIMIT,
        description=f"Entries per page, at most {HISTORY_MAX_LIMIT}.",
    ),
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
    repeat_from: str
    skipped_at: str | None
    deleted_at: str | None
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


class GetTaskResult(TaskData):
    task_id: int


class ReopenTaskResult(TaskData):
    task_id: int
    status: Literal["reopened"]


class HistoryEntry(TypedDict):
    """One event of a task, as ``GET /api/tasks/<id>/history/`` shows it."""

    event_id: str
    event_type: str
    sequence: int
    timestamp: str
    changed_fields: list[str]
    previous: dict[str, Any]
    task: dict[str, Any]
    actor: Annotated[
        dict[str, Any] | None,
        Field(description="Who made the change: surface, MCP client, token_id."),
    ]


class TaskHistoryResult(TypedDict):
    task_id: int
    entries: list[HistoryEntry]
    total_count: int
    limit: int
    offset: int


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
    next_cursor: Annotated[
        str | None,
        Field(description="Pass as cursor for the next page; null on the last page."),
    ]
    corrected: NotRequired[
        Annotated[
            dict[str, str],
            Field(
                description="Search words that matched nothing, each with the closest word of "
                "the user's own that was searched for instead."
            ),
        ]
    ]


# --- series, trash, change feed -------------------------------------------------------------

NewDueDate = Annotated[
    _WhenText,
    Field(
        min_length=1,
        json_schema_extra={"format": "date-time"},
        description="The new due time, ISO 8601 (e.g. 2026-12-01T09:00:00Z); without an offset "
        "it is wall-clock time in the task's time zone.",
    ),
]
ApplyTo = Annotated[
    _choice(APPLY_TO_CHOICES) | None,
    Field(
        description="instance (default): move this occurrence alone; series: move the series' "
        "calendar here, so every later occurrence follows."
    ),
]
OccurrenceCount = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_OCCURRENCES,
        description=f"How many due times, at most {MAX_OCCURRENCES} "
        f"(default {DEFAULT_OCCURRENCES}).",
    ),
]
Since = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_TASK_ID,
        description="The last sequence you have (0: from the first event); next_since of the "
        "previous call.",
    ),
]
ChangesLimit = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_CHANGES,
        description=f"At most this many changes (default {DEFAULT_CHANGES}).",
    ),
]


class OccurrenceData(TypedDict):
    index: int
    due: str
    due_utc: str
    task_id: int | None


class SkipOccurrenceResult(TaskData):
    task_id: int
    status: Literal["skipped"]


class RescheduleOccurrenceResult(TaskData):
    task_id: int
    status: Literal["rescheduled"]
    apply_to: str
    updated_fields: list[str]


class PreviewOccurrencesResult(TypedDict):
    task_id: int
    timezone: str
    repeat_from: str
    occurrences: list[OccurrenceData]


class RestoreTaskResult(TaskData):
    task_id: int
    status: Literal["restored"]


class ListTrashResult(TypedDict):
    tasks: Annotated[
        list[dict[str, Any]],
        WithJsonSchema(
            {
                "type": "array",
                "items": {
                    **LISTED_TASK_SCHEMA,
                    "required": [*LISTED_TASK_SCHEMA["required"], "purge_after"],
                },
            }
        ),
    ]
    total_count: int
    limit: int
    offset: int


class ChangeData(TypedDict):
    """One change, as ``GET /api/changes/`` shows it."""

    sequence: int
    event_type: str
    event_id: str
    timestamp: str
    task_id: int | None
    task: NotRequired[dict[str, Any]]
    deleted: NotRequired[bool]
    payload: NotRequired[dict[str, Any]]


class ChangesSinceResult(TypedDict):
    changes: list[ChangeData]
    next_since: int
    has_more: bool


# --- bulk ---------------------------------------------------------------------------------

MAX_BULK_ITEMS = 50

DryRun = Annotated[
    bool,
    Field(
        strict=True,
        description="true: check every item and say what would happen, change nothing.",
    ),
]


@with_config(ConfigDict(extra="forbid"))
class NewTaskItem(TypedDict):
    """One task for add_tasks: add_task's arguments."""

    title: Title
    description: NotRequired[Description]
    priority: NotRequired[Priority]
    tags: NotRequired[Tags]
    due_date: NotRequired[DueDate]
    recurrence_pattern: NotRequired[RecurrencePattern]
    reminder_time: NotRequired[ReminderTime]
    timezone: NotRequired[TimeZone]


@with_config(ConfigDict(extra="forbid"))
class TaskChangeItem(TypedDict):
    """One change for update_tasks: update_task's arguments."""

    task_id: TaskId
    title: NotRequired[NewTitle]
    description: NotRequired[Description]
    priority: NotRequired[Priority]
    tags: NotRequired[Tags]
    due_date: NotRequired[DueDate]
    recurrence_pattern: NotRequired[RecurrencePattern]
    reminder_time: NotRequired[ReminderTime]
    timezone: NotRequired[TimeZone]


NewTaskItems = Annotated[
    list[NewTaskItem],
    Field(
        min_length=1,
        max_length=MAX_BULK_ITEMS,
        description=f"The tasks to add, at most {MAX_BULK_ITEMS}.",
    ),
]
TaskChangeItems = Annotated[
    list[TaskChangeItem],
    Field(
        min_length=1,
        max_length=MAX_BULK_ITEMS,
        description=f"The changes, at most {MAX_BULK_ITEMS}: each a task_id and the fields "
        "to change.",
    ),
]
TaskIds = Annotated[
    list[TaskId],
    Field(
        min_length=1, max_length=MAX_BULK_ITEMS, description=f"The tasks, at most {MAX_BULK_ITEMS}."
    ),
]


class ItemError(TypedDict):
    code: str
    message: str
    field: str | None


class BulkItemResult(TypedDict):
    index: int
    ok: bool
    task_id: int | None
    status: str
    title: NotRequired[str]
    updated_fields: NotRequired[list[str]]
    error: NotRequired[ItemError]


class BulkResult(TypedDict):
    dry_run: bool
    succeeded: int
    failed: int
    results: list[BulkItemResult]


class UndoneEvent(TypedDict):
    event_id: str
    event_type: str


class UndoResult(TypedDict):
    task_id: int
    action: Literal["reverted", "restored", "trashed"]
    undone: UndoneEvent
    task: TaskData
