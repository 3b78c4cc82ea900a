"""The only code that writes tasks.

Each function runs in one transaction: it takes the user's lock, validates, writes the row with
``update_fields``, records the task's event (``tasks.event_types``) and then announces the change
with ``task_changed``, so the events the receivers record (a reminder's) come after the task's.
Surfaces (REST, MCP, admin, consumers, commands) call these and nothing else. The audit
consumer's history rows are written here too (``task_history_record``).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.locking import lock_user
from events.actors import acting_as, current_actor
from events.schemas import Envelope
from events.selectors import recent_events_about
from events.services import event_records
from idempotency.transactions import service_savepoint
from tasks.errors import TaskConflict, TaskNotFound, TaskValidationError, VersionConflict
from tasks.event_types import TaskPayload, task_event
from tasks.models import (
    APPLY_TO_CHOICES,
    TASK_LIVE_SQL,
    TASK_OPEN_SQL,
    TRASH_RETENTION,
    UNDO_WINDOW,
    Task,
)
from tasks.representation import iso, task_to_dict
from tasks.signals import TaskChange, task_changed
from tasks.validation import (
    check_series_end,
    clean_description,
    clean_due,
    clean_priority,
    clean_recurrence,
    clean_reminder,
    clean_repeat_from,
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
    "repeat_from",
    "timezone",
    "completed",
)


def _announce(*changes: TaskChange) -> None:
    # The tasks' own events first (one statement): whatever the receivers record in this
    # transaction follows them.
    event_records([task_event(change) for change in changes])
    for change in changes:
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


def _locked_task(*, user_id: str, task_id: int, in_trash: bool | None = False) -> Task:
    """The user's task, locked. A task in the trash is "not found" unless ``in_trash`` is True
    (only there) or None (wherever it is)."""
    found = Task.objects.select_for_update().filter(pk=task_id, user_id=user_id)
    if in_trash is not None:
        found = found.filter(deleted_at__isnull=not in_trash)
    try:
        return found.get()
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
    repeat_from: str | None = None,
    series_id: uuid.UUID | None = None,
    series_anchor: datetime | None = None,
    series_index: int = 0,
    series_anchor_index: int = 0,
    check_reminder_in_past: bool = True,
) -> Task:
    """Create a task. ``series_*`` are for the next instance of a recurring series; a second
    instance with the same series and due time raises ``TaskConflict(code="duplicate_instance")``."""
    task = _new_task(
        user_id=user_id,
        title=title,
        description=description,
        priority=priority,
        tags=tags,
        due_date=due_date,
        reminder_time=reminder_time,
        recurrence_pattern=recurrence_pattern,
        timezone_name=timezone_name,
        repeat_from=repeat_from,
        series_id=series_id,
        series_anchor=series_anchor,
        series_index=series_index,
        series_anchor_index=series_anchor_index,
        check_reminder_in_past=check_reminder_in_past,
    )
    # A savepoint only where a caller may catch an error and go on (idempotency.transactions).
    with transaction.atomic(savepoint=service_savepoint()):
        lock_user(user_id)
        with _duplicate_instance_is_a_conflict(), allow_task_writes():
            task.save(force_insert=True)
        _announce(
            TaskChange(action="created", task=task, user_id=user_id, snapshot=task_to_dict(task))
        )
    return task


class InvalidItem(Exception):
    """``task_create_many`` refuses item ``index`` with ``error`` (what ``task_create`` would
    raise for it alone); nothing was written."""

    def __init__(self, index: int, error: TaskValidationError):
        super().__init__(f"item {index}: {error}")
        self.index = index
        self.error = error


def task_create_many(*, user_id: str, items: list[dict[str, Any]]) -> list[Task]:
    """Create several of one user's tasks, each item holding ``task_create``'s arguments, with
    the events ``task_create`` called for each in turn would record: every item is checked
    first (``InvalidItem`` names the first refused, and nothing is written), then one lock,
    one insert and one statement for the tasks' events, then ``task_changed`` for each task in
    order. The receivers' events (a reminder's) follow all the tasks' own, each still after
    its task's."""
    tasks = []
    for index, item in enumerate(items):
        try:
            tasks.append(_new_task(user_id=user_id, **item))
        except TaskValidationError as exc:
            raise InvalidItem(index, exc) from exc
    if not tasks:
        return []
    with transaction.atomic(savepoint=service_savepoint()):
        lock_user(user_id)
        with _duplicate_instance_is_a_conflict(), allow_task_writes():
            Task.objects.bulk_create(tasks)
        _announce(
            *(
                TaskChange(
                    action="created", task=task, user_id=user_id, snapshot=task_to_dict(task)
                )
                for task in tasks
            )
        )
    return tasks


def _new_task(
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
    repeat_from: str | None = None,
    series_id: uuid.UUID | None = None,
    series_anchor: datetime | None = None,
    series_index: int = 0,
    series_anchor_index: int = 0,
    check_reminder_in_past: bool = True,
) -> Task:
    """The new task, checked and not yet saved: the one validation of every create."""
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
        repeat_from=clean_repeat_from(repeat_from),
        timezone=tz_name,
        created_at=now,
        updated_at=now,
        version=1,
    )
    if rule_text != "none":
        task.series_id = series_id or uuid.uuid4()
        task.series_anchor = series_anchor or due_at
        task.series_index = series_index
        task.series_anchor_index = series_anchor_index if series_anchor else 0
    return task


@contextmanager
def _duplicate_instance_is_a_conflict():
    # The refused insert needs no savepoint of its own: the conflict leaves the service's block,
    # whose savepoint (or rollback, when it is the whole transaction) undoes it for the caller
    # that catches it (the recurrence consumer; a bulk batch).
    try:
        yield
    except IntegrityError as exc:
        if "task_one_instance_per_series_due" in str(exc):
            raise TaskConflict(
                "This series already has an instance due at that time.",
                field="due_date",
                code="duplicate_instance",
            ) from None
        raise


def task_update(
    *,
    user_id: str,
    task_id: int,
    changes: dict[str, Any],
    expected_version: int | None = None,
    apply_to: str = "instance",
) -> tuple[Task, tuple[str, ...]]:
    """Apply a partial change (representation field names). Returns the task and the names of
    the fields whose value changed. A change of ``completed`` is announced as completed/reopened;
    a change that changes nothing writes nothing and announces nothing.

    A new ``due_date`` on a recurring instance moves that occurrence alone unless ``apply_to``
    is ``"series"``, which moves the series' anchor (and so every later occurrence); a new rule
    always restarts the series here. Only ``recurrence_pattern`` set to null or ``"none"``
    removes a task's recurrence."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise TaskValidationError(
            f"Unknown or read-only field: {field}.", field=field, code="unknown_field"
        )
    if apply_to not in APPLY_TO_CHOICES:
        raise TaskValidationError(
            f"apply_to must be one of {', '.join(APPLY_TO_CHOICES)}.",
            field="apply_to",
            code="invalid_choice",
        )
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id)
        _check_version(task, expected_version)
        before = task_to_dict(task)
        anchor_before = (task.series_anchor, task.series_anchor_index)
        now = timezone.now()
        _apply_changes(task, changes, now=now, apply_to=apply_to)
        after = task_to_dict(task)
        changed = tuple(
            name
            for name in (*EDITABLE_FIELDS, "remind_at", "completed_at", "skipped_at")
            if before[name] != after[name]
        )
        if not changed and (task.series_anchor, task.series_anchor_index) != anchor_before:
            # The series moved to where this instance already is: a change of the series alone.
            changed = ("due_date",)
        if not changed:
            return task, ()
        task.updated_at = now
        task.version = task.version + 1
        with _duplicate_instance_is_a_conflict(), allow_task_writes():
            task.save(update_fields=[*_model_fields(changed), "updated_at", "version"])
        action = "updated"
        if "completed" in changed:
            action = "completed" if task.completed else "reopened"
        elif "skipped_at" in changed:
            action = "reopened"  # a skipped occurrence set back to pending
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
    "due_date": ("due_at", "series_anchor", "series_anchor_index"),
    "reminder_time": ("reminder_offset", "remind_at"),
    "remind_at": ("remind_at",),
    "recurrence_pattern": (
        "recurrence_rule",
        "series_id",
        "series_anchor",
        "series_index",
        "series_anchor_index",
    ),
    "repeat_from": ("repeat_from",),
    "timezone": ("timezone",),
    "completed": ("completed", "completed_at", "skipped_at"),
    "completed_at": ("completed_at",),
    "skipped_at": ("skipped_at",),
}


def _model_fields(changed: tuple[str, ...]) -> list[str]:
    fields: list[str] = []
    for name in changed:
        for model_field in _MODEL_FIELDS[name]:
            if model_field not in fields:
                fields.append(model_field)
    return fields


def _apply_changes(
    task: Task, changes: dict[str, Any], *, now: datetime, apply_to: str = "instance"
) -> None:
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
    if "repeat_from" in changes:
        task.repeat_from = clean_repeat_from(changes["repeat_from"])
    rule_changed = False
    if "recurrence_pattern" in changes:
        rule_text = recurrence_text(clean_recurrence(changes["recurrence_pattern"]))
        if rule_text != task.recurrence_rule:
            rule_changed = True
            task.recurrence_rule = rule_text
            if rule_text == "none":
                task.series_id, task.series_anchor = None, None
            elif task.series_id is None:
                task.series_id, task.series_anchor = uuid.uuid4(), task.due_at
            else:
                # A new rule restarts the series from this instance.
                task.series_anchor = task.due_at
            task.series_index, task.series_anchor_index = 0, 0
    if not rule_changed and apply_to == "series" and task.series_id is not None:
        _move_series_here(task)
    require_due_for_recurrence(task.recurrence_rule, task.due_at)
    check_series_end(task.recurrence_rule, anchor=task.series_anchor, tz_name=task.timezone)
    if "completed" in changes:
        value = changes["completed"]
        if not isinstance(value, bool):
            raise TaskValidationError(
                "completed must be true or false.", field="completed", code="invalid_type"
            )
        if value and not task.completed:
            task.completed, task.completed_at, task.skipped_at = True, now, None
        elif not value and task.completed:
            task.completed, task.completed_at = False, None
        elif not value and task.skipped_at is not None:
            task.skipped_at = None


def _move_series_here(task: Task) -> None:
    """The series' calendar restarts at this instance's due time; it keeps its index, so COUNT
    still counts every occurrence since the first."""
    if task.due_at is not None:
        task.series_anchor, task.series_anchor_index = task.due_at, task.series_index


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
    permanent: bool = False,
) -> dict:
    """Move a task to the trash (``TRASH_RETENTION``, then purged), or delete it at once with
    ``permanent``, also from the trash. Returns its last representation. ``stop_series`` tells
    the recurrence consumer that the series ends here."""
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id, in_trash=None if permanent else False)
        _check_version(task, expected_version)
        if task.deleted_at is not None:
            return _purge_locked(task, reason="requested")
        if permanent:
            snapshot = _delete_row(task)
        else:
            now = timezone.now()
            _save_one_field(task, "deleted_at", now, now=now)
            snapshot = task_to_dict(task)
        _announce(
            TaskChange(
                action="deleted",
                task=task,
                user_id=user_id,
                snapshot=snapshot,
                options={"stop_series": bool(stop_series), "trashed": not permanent},
            )
        )
    return snapshot


def _save_one_field(task: Task, name: str, value, *, now: datetime) -> None:
    """Set one field of the locked task and save it as a new version."""
    setattr(task, name, value)
    task.updated_at, task.version = now, task.version + 1
    with allow_task_writes():
        task.save(update_fields=[name, "updated_at", "version"])


def _delete_row(task: Task) -> dict:
    """Delete the locked task's row; returns its last representation (the task keeps its id,
    for the announcement)."""
    snapshot = task_to_dict(task)
    with allow_task_writes():
        task.delete()
    task.pk = snapshot["id"]
    return snapshot


def _purge_locked(task: Task, *, reason: str) -> dict:
    """Delete a task that is in the trash (its lock held); announce ``task.purged``."""
    snapshot = _delete_row(task)
    _announce(
        TaskChange(
            action="purged",
            task=task,
            user_id=task.user_id,
            snapshot=snapshot,
            options={"reason": reason},
        )
    )
    return snapshot


def task_restore(*, user_id: str, task_id: int) -> Task:
    """Take a task out of the trash, as it was, with its history; its reminder is scheduled
    again when still to come. A task that is not in the trash is a 409 ``not_in_trash``."""
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id, in_trash=None)
        if task.deleted_at is None:
            raise TaskConflict("The task is not in the trash.", field=None, code="not_in_trash")
        deleted_at = task.deleted_at
        now = timezone.now()
        _save_one_field(task, "deleted_at", None, now=now)
        _announce(
            TaskChange(
                action="restored",
                task=task,
                user_id=user_id,
                snapshot=task_to_dict(task),
                changed_fields=("deleted_at",),
                previous={"deleted_at": iso(deleted_at)},
            )
        )
    return task


def task_skip(*, user_id: str, task_id: int, expected_version: int | None = None) -> Task:
    """Skip this occurrence of a series: it is closed without being done, and the recurrence
    consumer creates the next instance as after a completion. Skipping a skipped occurrence
    changes nothing; a task that does not repeat is a 409 ``not_recurring``, a completed one
    a 409 ``already_completed``."""
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id)
        _check_version(task, expected_version)
        if task.recurrence_rule == "none" or task.series_id is None:
            raise TaskConflict(
                "Only an occurrence of a recurring task can be skipped.",
                field=None,
                code="not_recurring",
            )
        if task.completed:
            raise TaskConflict(
                "This occurrence is already done; reopen it to skip it.",
                field=None,
                code="already_completed",
            )
        if task.skipped_at is not None:
            return task
        now = timezone.now()
        _save_one_field(task, "skipped_at", now, now=now)
        _announce(
            TaskChange(
                action="skipped",
                task=task,
                user_id=user_id,
                snapshot=task_to_dict(task),
                changed_fields=("skipped_at",),
                previous={"skipped_at": None},
            )
        )
    return task


# The fields an undo may set back (the others in ``changed_fields`` follow from these).
_UNDOABLE_FIELDS = frozenset(EDITABLE_FIELDS)


@dataclass(frozen=True)
class Undone:
    """What an undo did: the change it reverted (its event) and the task after it."""

    undone_event_id: uuid.UUID
    undone_event_type: str
    action: str
    task: dict


def task_undo(*, user_id: str, task_id: int, token_id: str | None) -> Undone:
    """Revert the latest change to the task if the token ``token_id`` made it less than
    ``UNDO_WINDOW`` ago, as a new change with its own event (an update back to the previous
    values, a restore of a deletion, a trash of a creation, a reopen of a completion), never by
    rewriting history. A later change by anyone else is a 409 ``conflict``; nothing of this
    token's to undo is a 409 ``nothing_to_undo``. The undo's event names what it undid
    (``actor.undoes``), and undoing an undo puts the change back."""
    if not token_id:
        raise TaskConflict(
            "Undo needs a bearer token: only the token that made a change can undo it.",
            field=None,
            code="nothing_to_undo",
        )
    with transaction.atomic():
        lock_user(user_id)
        task = _locked_task(user_id=user_id, task_id=task_id, in_trash=None)
        events = recent_events_about(
            user_id=user_id,
            subject_key="task_id",
            subject_id=task_id,
            event_prefix="task.",
            since=timezone.now() - UNDO_WINDOW,
        )
        mine = [event for event in events if event.actor and event.actor.token_id == token_id]
        if not mine:
            raise TaskConflict(
                f"This token made no change to task {task_id} in the last "
                f"{int(UNDO_WINDOW.total_seconds() // 60)} minutes.",
                field=None,
                code="nothing_to_undo",
            )
        if events[0].event_id != mine[0].event_id:
            raise TaskConflict(
                f"Task {task_id} was changed after your change ({events[0].event_type}, "
                f"sequence {events[0].sequence}); undo would overwrite it.",
                field=None,
                code="conflict",
            )
        target = events[0]
        actor = current_actor().model_copy(update={"undoes": target.event_id})
        with acting_as(actor):
            action, after = _revert(task, target, user_id=user_id)
    return Undone(
        undone_event_id=target.event_id,
        undone_event_type=target.event_type,
        action=action,
        task=after,
    )


def _revert(task: Task, event: Envelope, *, user_id: str) -> tuple[str, dict]:
    """The change that takes ``task`` back to before ``event``: (what was done, the task)."""
    payload = cast(TaskPayload, event.payload)  # ``task.*`` events only
    if event.event_type in {"task.created", "task.restored"}:
        return "trashed", task_delete(user_id=user_id, task_id=task.pk)
    if event.event_type == "task.deleted":
        if not getattr(payload, "trashed", False):
            raise TaskConflict(
                "That deletion was permanent; the task cannot come back.",
                field=None,
                code="cannot_undo",
            )
        return "restored", task_to_dict(task_restore(user_id=user_id, task_id=task.pk))
    if event.event_type == "task.skipped":
        changes = {"completed": False}  # reopening a skipped occurrence clears skipped_at
    else:
        previous = dict(getattr(payload, "previous", {}))
        changed = getattr(payload, "changed_fields", [])
        changes = {name: previous[name] for name in changed if name in _UNDOABLE_FIELDS}
    if not changes:
        raise TaskConflict(
            f"A {event.event_type} change cannot be undone.", field=None, code="cannot_undo"
        )
    updated, _ = task_update(
        user_id=user_id,
        task_id=task.pk,
        changes=changes,
        expected_version=payload.task_data.version,
    )
    return "reverted", task_to_dict(updated)


def task_trash_purge(*, older_than: timedelta = TRASH_RETENTION, limit: int = 1000) -> int:
    """Delete up to ``limit`` tasks that have been in the trash longer than ``older_than`` (the
    retention sweep's part for tasks), each in its own transaction with its ``task.purged``.
    Returns how many went."""
    cutoff = timezone.now() - older_than
    expired = list(
        Task.objects.filter(deleted_at__lt=cutoff)
        .order_by("deleted_at", "pk")
        .values_list("pk", "user_id")[:limit]
    )
    purged = 0
    for task_id, owner in expired:
        with transaction.atomic():
            lock_user(owner)
            task = (
                Task.objects.select_for_update()
                .filter(pk=task_id, user_id=owner, deleted_at__lt=cutoff)
                .first()
            )
            if task is not None:  # restored or purged since it was read
                _purge_locked(task, reason="expired")
                purged += 1
    return purged


_INSERT_HISTORY = """
INSERT INTO events_taskhistory
    (user_id, task_id, event_id, event_type, sequence, occurred_at, changed_fields, previous,
     task_data, actor, recorded_at)
SELECT r.user_id, r.task_id, r.event_id, r.event_type, r.sequence, r.occurred_at,
       ARRAY(SELECT jsonb_array_elements_text(r.changed_fields)), r.previous, r.task_data,
       r.actor, now()
FROM jsonb_to_recordset(%s::jsonb) AS r(
    user_id text, task_id bigint, event_id uuid, event_type text, sequence bigint,
    occurred_at timestamptz, changed_fields jsonb, previous jsonb, task_data jsonb, actor jsonb)
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
        "actor": envelope.actor.model_dump(mode="json") if envelope.actor else None,
    }


# Each user's counts as the tasks say (``TaskCount``), written where the kept ones differ.
_RECOUNT = f"""
    WITH actual AS (
        SELECT user_id, count(*) AS live, count(*) FILTER (WHERE {TASK_OPEN_SQL}) AS open
        FROM tasks_task WHERE {TASK_LIVE_SQL} GROUP BY user_id
    )
    INSERT INTO tasks_taskcount AS counted (user_id, live, open)
    SELECT user_id, COALESCE(actual.live, 0), COALESCE(actual.open, 0)
    FROM actual FULL JOIN tasks_taskcount AS kept USING (user_id)
    WHERE (COALESCE(actual.live, 0), COALESCE(actual.open, 0))
        IS DISTINCT FROM (COALESCE(kept.live, 0), COALESCE(kept.open, 0))
    ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET live = EXCLUDED.live, open = EXCLUDED.open
    RETURNING user_id
"""  # noqa: S608


def task_counts_recount() -> list[str]:
    """Count every user's tasks again and correct the kept counts (``TaskCount``) that differ;
    returns those users. The triggers keep the counts through every write, so they differ only
    after tasks were written with triggers off (``session_replication_role = replica``, a
    data-only restore with ``--disable-triggers``). Writes to tasks wait while it counts (about
    0.5 s for a million tasks); reads do not."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE tasks_task IN SHARE MODE")
        cursor.execute(_RECOUNT)
        return [user_id for (user_id,) in cursor.fetchall()]
