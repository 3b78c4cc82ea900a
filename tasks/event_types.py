"""The task events: ``task.created|updated|completed|reopened|skipped|deleted|restored|purged``.

Each payload carries ``task_id`` and the task as REST shows it (``task_data``), plus
``changed_fields`` and ``previous`` for a change, ``stop_series`` and ``trashed`` for a delete
and ``reason`` for a purge (a task leaving the trash for good). They go to
``task-events`` (background services) and ``task-updates`` (clients). The task services record
the event of each change (``task_event``) before they announce the change, so the events other
apps record for it come after it. Registered in ``TasksConfig.ready``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from events import topics
from events.schemas import Envelope, StrictModel, UtcDatetime, register_event_type
from events.services import NewEvent
from tasks.models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    PRIORITY_LABELS,
    RECURRENCE_MAX_LENGTH,
    REPEAT_FROM_CHOICES,
    TAG_MAX_LENGTH,
    TIMEZONE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    TRASH_RETENTION,
)
from tasks.signals import TaskChange

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_COMPLETED = "task.completed"
TASK_REOPENED = "task.reopened"
TASK_SKIPPED = "task.skipped"
TASK_DELETED = "task.deleted"
TASK_RESTORED = "task.restored"
TASK_PURGED = "task.purged"
TASK_EVENT_TYPES = frozenset(
    {
        TASK_CREATED,
        TASK_UPDATED,
        TASK_COMPLETED,
        TASK_REOPENED,
        TASK_SKIPPED,
        TASK_DELETED,
        TASK_RESTORED,
        TASK_PURGED,
    }
)

TASK_TOPICS = (topics.TASK_EVENTS, topics.TASK_UPDATES)

PriorityLabel = Literal[PRIORITY_LABELS]  # type: ignore[valid-type]
RepeatFromLabel = Literal[REPEAT_FROM_CHOICES]  # type: ignore[valid-type]


class TaskSnapshot(BaseModel):
    """The task as REST shows it (``tasks.representation.task_to_dict``), after the change
    (before it, for a delete). New fields may appear; consumers ignore what they don't know."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: PositiveInt
    title: str = Field(min_length=1, max_length=TITLE_MAX_LENGTH)
    description: str = Field(max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool
    completed_at: UtcDatetime | None
    priority: PriorityLabel
    tags: list[Annotated[str, Field(min_length=1, max_length=TAG_MAX_LENGTH)]] = Field(
        max_length=MAX_TAGS
    )
    due_date: UtcDatetime | None
    reminder_time: str | None = Field(
        description="Offset before due (`1h`, `2d`, `1w`) or an absolute RFC 3339 time."
    )
    remind_at: UtcDatetime | None
    recurrence_pattern: str = Field(max_length=RECURRENCE_MAX_LENGTH)
    series_id: uuid.UUID | None
    series_index: int = Field(ge=0)
    # Absent from events recorded before series could repeat from completion, skip or trash.
    repeat_from: RepeatFromLabel = "due"
    skipped_at: UtcDatetime | None = Field(
        default=None, description="Set when this occurrence of a series was skipped."
    )
    deleted_at: UtcDatetime | None = Field(
        default=None, description="Set while the task is in the trash."
    )
    timezone: str = Field(min_length=1, max_length=TIMEZONE_MAX_LENGTH)
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: PositiveInt


class TaskPayload(StrictModel):
    task_id: PositiveInt
    task_data: TaskSnapshot

    @model_validator(mode="after")
    def _same_task(self):
        if self.task_data.id != self.task_id:
            raise ValueError("task_data.id must equal task_id")
        return self


class TaskChangePayload(TaskPayload):
    changed_fields: list[str] = Field(
        min_length=1, description="Representation names of the fields whose value changed."
    )
    previous: dict[str, Any] = Field(
        description="The changed fields' values before the change, as REST showed them."
    )

    @model_validator(mode="after")
    def _previous_matches(self):
        if set(self.previous) - set(self.changed_fields):
            raise ValueError("previous may only hold changed fields")
        return self


class TaskDeletedPayload(TaskPayload):
    stop_series: bool = Field(description="The recurring series ends with this task.")
    trashed: bool = Field(
        default=False,
        description="The task went to the trash (it can be restored until `purge_after`); "
        "false when it was deleted at once.",
    )
    purge_after: UtcDatetime | None = Field(
        default=None, description="When the retention sweep purges it from the trash."
    )


class TaskPurgedPayload(TaskPayload):
    reason: Literal["expired", "requested"] = Field(
        description="Its time in the trash ran out, or it was deleted from the trash."
    )


class TaskCreated(Envelope):
    event_type: Literal["task.created"]
    payload: TaskPayload


class TaskUpdated(Envelope):
    event_type: Literal["task.updated"]
    payload: TaskChangePayload


class TaskCompleted(Envelope):
    event_type: Literal["task.completed"]
    payload: TaskChangePayload


class TaskReopened(Envelope):
    event_type: Literal["task.reopened"]
    payload: TaskChangePayload


class TaskSkipped(Envelope):
    event_type: Literal["task.skipped"]
    payload: TaskChangePayload


class TaskDeleted(Envelope):
    event_type: Literal["task.deleted"]
    payload: TaskDeletedPayload


class TaskRestored(Envelope):
    event_type: Literal["task.restored"]
    payload: TaskChangePayload


class TaskPurged(Envelope):
    event_type: Literal["task.purged"]
    payload: TaskPurgedPayload


def task_event(change: TaskChange) -> NewEvent:
    """The event that records ``change``, to write in the change's own transaction."""
    snapshot = change.snapshot
    payload: dict = {"task_id": snapshot["id"], "task_data": snapshot}
    if change.action in {"updated", "completed", "reopened", "skipped", "restored"}:
        payload["changed_fields"] = list(change.changed_fields)
        payload["previous"] = dict(change.previous)
    elif change.action == "deleted":
        payload["stop_series"] = bool(change.options.get("stop_series", False))
        trashed = bool(change.options.get("trashed", False))
        payload["trashed"] = trashed
        deleted_at = change.task.deleted_at
        payload["purge_after"] = deleted_at + TRASH_RETENTION if trashed and deleted_at else None
    elif change.action == "purged":
        payload["reason"] = change.options["reason"]
    return NewEvent(event_type=f"task.{change.action}", user_id=change.user_id, payload=payload)


def register() -> None:
    register_event_type(TaskCreated, topics=TASK_TOPICS, description="A task was created.")
    register_event_type(
        TaskUpdated,
        topics=TASK_TOPICS,
        description="Fields of a task changed (not its completion); `changed_fields` says which.",
    )
    register_event_type(
        TaskCompleted,
        topics=TASK_TOPICS,
        description="A task was marked done (other fields may have changed with it).",
    )
    register_event_type(
        TaskReopened, topics=TASK_TOPICS, description="A completed task was marked not done."
    )
    register_event_type(
        TaskSkipped,
        topics=TASK_TOPICS,
        description="An occurrence of a recurring series was skipped: closed, not done; the "
        "series goes on to its next instance.",
    )
    register_event_type(
        TaskDeleted,
        topics=TASK_TOPICS,
        description="A task was deleted: moved to the trash (`trashed`), or at once; "
        "`task_data` is its last state.",
    )
    register_event_type(
        TaskRestored,
        topics=TASK_TOPICS,
        description="A task came back from the trash, as it was.",
    )
    register_event_type(
        TaskPurged,
        topics=TASK_TOPICS,
        description="A task in the trash was deleted for good; `task_data` is its last state.",
    )
