"""The only code that writes tasks.

Each function runs in one transaction: it takes the user's lock, validates, writes the row with
``update_fields``, records the task's event (``tasks.event_types``) and then announces the change
with ``task_changed``, so the events the receivers record (a reminder's) come after the task's.
Surfaces (REST, MCP, admin, consumers, commands) call these and nothing else. The audit
consumer's history rows are written here too (``task_history_record``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.locking import lock_user
from events.schemas import Envelope
from events.services import event_records
from tasks.errors import TaskConflict, TaskNotFound, TaskValidationError, VersionConflict
from tasks.event_types import TaskPayload, task_event
from tasks.models import Task
from tasks.representation import task_to_dict
from tasks.signals import TaskChange, task_changed
from tasks.validation import (
    check_series_end,
    clean_description,
    clean_due,
    clean_priority,
    clean_recurrence,
    clean_reminder,
    clean_tags,
    clean_timezone,
    clean_title,
    recurrence_text,
    require_due_for_recurrence,
)
from tasks.write_guard import allow_task_writes

# Representation name -> model fields it is stored in.
EDITABLE_FIELDS = (
    "title",
    "description",
    "priority",
    "tags",
    "due_date",
    "reminder_time",
    "recurrence_pattern",
    "timezone",
    "completed",
)


def _announce(change: TaskChange) -> None:
    # The task's own event first: whatever the receivers record in this transaction follows it.
    event_records([task_event(change)])
    task_changed.send(sender=Task, change=change)


def _check_reminder_not_past(
    *, remind_at: datetime | None, due_at: datetime | None, now: datetime
) -> None:
    """A reminder already in the past is a mistake, unless the task is itself overdue."""
    if remind_at is None or remind_at > now:
        return
    if due_at is not None and due_at <= now:
        return
    raise TaskValidationError(
        "The reminder time is already in the past.", field="reminder_time", code="in_past"
    )


def _locked_task(*, user_id: str, task_id: int) -> Task:
    try:
        return Task.objects.select_for_update().get(pk=task_id, user_id=user_id)
    except (Task.DoesNotExist, ValueError, TypeError, OverflowError):
        raise TaskNotFound(task_id) from None


def _check_version(task: Task, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != task.version:
        raise VersionConflict(expected=expected_version, actual=task.version)


def task_create(
    *,
    user_id: str,
    title: str,
    description: str | None = "",
    priority: str = "medium",
    tags: list[str] | None = None,
    due_date: datetime | str | None = None,
    reminder_time: str | datetime | timedelta | None = None,
    recurrence_pattern: str | dict | None = None,
    timezone_name: str | None = "UTC",
    series_id: uuid.UUID | None = None,
    series_anchor: datetime | None = None,
    series_index: int = 0,
    check_reminder_in_past: bool = True,
) -> Task:
    """Create a task. ``series_*`` are for the next instance of a recurring series; a second
    instance with the same series and due time raises ``TaskConflict(code="duplicate_instance")``."""
    if not user_id or not isinstance(user_id, str):
        raise TaskValidationError("A task needs an owner.", field="user_id", code="required")
    tz_name = clean_timezone(timezone_name)
    due_at = clean_due(due_date, tz_name=tz_name)
    offset, remind_at = clean_reminder(reminder_time, due_at=due_at, tz_name=tz_name)
    rule = clean_recurrence(recurrence_pattern)
    rule_text = recurrence_text(rule)
    require_due_for_recurrence(rule_text, due_at)
    check_series_end(rule_text, anchor=series_anchor or due_at, tz_name=tz_name)
    now = timezone.now()
    if check_reminder_in_past:
        _check_reminder_not_past(remind_at=remind_at, due_at=due_at, now=now)
    task = Task(
        user_id=user_id,
        title=clean_title(title),
        description=clean_description(description),
        priority=clean_priority(priority),
        tags=clean_tags(tags),
        due_at=due_at,
        reminder_offset=offset,
        remind_at=remind_at,
        recurrence_rule=rule_text,
        timezone=tz_name,
        created_at=now,
        updated_at=now,
        version=1,
    )
    if rule_text != "none":
        task.series_id = series_id or uuid.uuid4()
        task.series_anchor = series_anchor or due_at
        task.series_index = series_index
    with transaction.atomic():
        lock_user(user_id)
        try:
            with transaction.atomic(), allow_task_writes():
                task.save(force_insert=True)
        except IntegrityError as exc:
            if "task_one_instance_per_series_due" in str(exc):
                raise TaskConflict(
                    "This series already has an instance due at that time.",
                    field="due_date",
                    code="duplicate_instance",
                ) from None
            raise
        _announce(
            TaskChange(action="created", task=task, user_id=user_id, snapshot=task_to_dict(task))
        )
    return task


def task_update(
    *,
    user_id: str,
    task_id: int,
    changes: dict[str, Any],
    expected_version: int | None = None,
) -> tuple[Task, tuple[str, ...]]:
    """Apply a partial change (representation field names). Returns the task and the names of
    the fields whose value changed. A change of ``completed`` is announced as completed/reopened;
    a change that changes nothing writes nothing and announces nothing."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise TaskValidationError(
            f"Unknown or read-only field: {field}.", field=field, code="unknown_field"
        )
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id)
        _check_version(task, expected_version)
        before = task_to_dict(task)
        now = timezone.now()
        _apply_changes(task, changes, now=now)
        after = task_to_dict(task)
        changed = tuple(
            name
            for name in (*EDITABLE_FIELDS, "remind_at", "completed_at")
            if before[name] != after[name]
        )
        if not changed:
            return task, ()
        task.updated_at = now
        task.version = task.version + 1
        with allow_task_writes():
            try:
                with transaction.atomic():
                    task.save(update_fields=[*_model_fields(changed), "updated_at", "version"])
            except IntegrityError as exc:
                if "task_one_instance_per_series_due" in str(exc):
                    raise TaskConflict(
                        "This series already has an instance due at that time.",
                        field="due_date",
                        code="duplicate_instance",
                    ) from None
                raise
        action = "updated"
        if "completed" in changed:
            action = "completed" if task.completed else "reopened"
        _announce(
            TaskChange(
                action=action,
                task=task,
                user_id=user_id,
                snapshot=task_to_dict(task),
                changed_fields=changed,
                previous={name: before[name] for name in changed},
            )
        )
    return task, changed


_MODEL_FIELDS = {
    "title": ("title",),
    "description": ("description",),
    "priority": ("priority",),
    "tags": ("tags",),
    "due_date": ("due_at",),
    "reminder_time": ("reminder_offset", "remind_at"),
    "remind_at": ("remind_at",),
    "recurrence_pattern": ("recurrence_rule", "series_id", "series_anchor", "series_index"),
    "timezone": ("timezone",),
    "completed": ("completed", "completed_at"),
    "completed_at": ("completed_at",),
}


def _model_fields(changed: tuple[str, ...]) -> list[str]:
    fields: list[str] = []
    for name in changed:
        for model_field in _MODEL_FIELDS[name]:
            if model_field not in fields:
                fields.append(model_field)
    return fields


def _apply_changes(task: Task, changes: dict[str, Any], *, now: datetime) -> None:
    if "timezone" in changes:
        task.timezone = clean_timezone(changes["timezone"])
    if "title" in changes:
        task.title = clean_title(changes["title"])
    if "description" in changes:
        task.description = clean_description(changes["description"])
    if "priority" in changes:
        task.priority = clean_priority(changes["priority"])
    if "tags" in changes:
        task.tags = clean_tags(changes["tags"])
    due_changed = False
    if "due_date" in changes:
        new_due = clean_due(changes["due_date"], tz_name=task.timezone)
        due_changed = new_due != task.due_at
        task.due_at = new_due
    if "reminder_time" in changes:
        previous_remind_at = task.remind_at
        task.reminder_offset, task.remind_at = clean_reminder(
            changes["reminder_time"], due_at=task.due_at, tz_name=task.timezone
        )
        if task.remind_at != previous_remind_at:
            _check_reminder_not_past(remind_at=task.remind_at, due_at=task.due_at, now=now)
    elif due_changed and task.reminder_offset is not None:
        if task.due_at is None:
            task.reminder_offset, task.remind_at = None, None
        else:
            task.remind_at = task.due_at - task.reminder_offset
    if "recurrence_pattern" in changes:
        rule_text = recurrence_text(clean_recurrence(changes["recurrence_pattern"]))
        if rule_text != task.recurrence_rule:
            task.recurrence_rule = rule_text
            if rule_text == "none":
                task.series_id, task.series_anchor, task.series_index = None, None, 0
            elif task.series_id is None:
                task.series_id, task.series_anchor, task.series_index = uuid.uuid4(), task.due_at, 0
            else:
                # A new rule restarts the series from this instance.
                task.series_anchor, task.series_index = task.due_at, 0
    elif due_changed and task.series_id is not None and task.series_index == 0:
        # Moving the first instance moves the series.
        task.series_anchor = task.due_at
    require_due_for_recurrence(task.recurrence_rule, task.due_at)
    check_series_end(task.recurrence_rule, anchor=task.series_anchor, tz_name=task.timezone)
    if "completed" in changes:
        value = changes["completed"]
        if not isinstance(value, bool):
            raise TaskValidationError(
                "completed must be true or false.", field="completed", code="invalid_type"
            )
        if value and not task.completed:
            task.completed, task.completed_at = True, now
        elif not value and task.completed:
            task.completed, task.completed_at = False, None


def task_complete(*, user_id: str, task_id: int, expected_version: int | None = None) -> Task:
    """Mark done. Completing a completed task changes nothing and announces nothing."""
    task, _ = task_update(
        user_id=user_id,
        task_id=task_id,
        changes={"completed": True},
        expected_version=expected_version,
    )
    return task


def task_reopen(*, user_id: str, task_id: int, expected_version: int | None = None) -> Task:
    task, _ = task_update(
        user_id=user_id,
        task_id=task_id,
        changes={"completed": False},
        expected_version=expected_version,
    )
    return task


def task_delete(
    *,
    user_id: str,
    task_id: int,
    stop_series: bool = False,
    expected_version: int | None = None,
) -> dict:
    """Delete a task; returns its last representation. ``stop_series`` tells the recurrence
    consumer that the series ends here."""
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id)
        _check_version(task, expected_version)
        snapshot = task_to_dict(task)
        with allow_task_writes():
            task.delete()
        task.pk = snapshot["id"]
        _announce(
            TaskChange(
                action="deleted",
                task=task,
                user_id=user_id,
                snapshot=snapshot,
                options={"stop_series": bool(stop_series)},
            )
        )
    return snapshot


_INSERT_HISTORY = """
INSERT INTO events_taskhistory
    (user_id, task_id, event_id, event_type, sequence, occurred_at, changed_fields, previous,
     task_data, recorded_at)
SELECT r.user_id, r.task_id, r.event_id, r.event_type, r.sequence, r.occurred_at,
       ARRAY(SELECT jsonb_array_elements_text(r.changed_fields)), r.previous, r.task_data, now()
FROM jsonb_to_recordset(%s::jsonb) AS r(
    user_id text, task_id bigint, event_id uuid, event_type text, sequence bigint,
    occurred_at timestamptz, changed_fields jsonb, previous jsonb, task_data jsonb)
"""


_json_default = DjangoJSONEncoder().default  # what orjson does not encode by itself


def task_history_record(*, envelopes: list[Envelope]) -> int:
    """The audit consumer's effect: one history row per task event (one statement per batch)."""
    if not envelopes:
        return 0
    rows = [_history_row(envelope) for envelope in envelopes]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_HISTORY, [orjson.dumps(rows, default=_json_default).decode()])
    return len(rows)


def _history_row(envelope: Envelope) -> dict:
    payload = cast(TaskPayload, envelope.payload)  # the audit consumer takes task events only
    return {
        "user_id": envelope.user_id,
        "task_id": payload.task_id,
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "sequence": envelope.sequence,
        "occurred_at": envelope.timestamp,
        "changed_fields": list(getattr(payload, "changed_fields", [])),
        "previous": dict(getattr(payload, "previous", {})),
        # The snapshot as the envelope serialises it, spliced in as JSON text.
        "task_data": orjson.Fragment(payload.task_data.model_dump_json()),
    }
