"""The only code that writes reminders and notifications.

Reminders follow their task: ``reminder_sync_for_task`` runs inside the task service's
transaction (through the ``task_changed`` receiver) and schedules, moves or cancels the task's
reminder, recording ``reminder.scheduled`` / ``reminder.cancelled`` in the same transaction.
Firing (``reminders_fire_due`` / ``reminder_fire_one`` from the polling scheduler,
``reminder_fire_from_job`` from a Dapr job trigger) holds the user's lock, checks the reminder is
still wanted, records ``reminder.triggered`` and marks it fired in one transaction, so a reminder
fires once per scheduling whoever triggers it and however often.

Nothing here talks to Dapr inside a transaction: the Jobs API is called after commit
(``reminders.jobs``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.locking import lock_user, lock_users
from events import wakeup
from events.services import NewEvent, event_record, event_records
from reminders import event_types, selectors
from reminders.errors import NotificationNotFound
from reminders.metrics import REMINDER_LATENESS, REMINDERS_FIRED
from reminders.models import Notification, Reminder, ReminderState
from reminders.representation import notification_to_dict
from tasks.models import Task
from tasks.representation import REPRESENTATION_FIELDS, iso, task_to_dict
from tasks.signals import TaskChange

logger = logging.getLogger(__name__)

# A reminder that fires this long after its time is late (the scheduler or Dapr was down, or
# the reminder was set for a moment that had already passed); its notification says so.
LATE_AFTER = timedelta(seconds=30)
# The polling schedulers LISTEN on this channel; a reminder scheduled to fire within the horizon
# wakes them after commit (later ones are found by their regular look at the next due time).
WAKE_HORIZON = timedelta(seconds=15)


def dapr_mode() -> bool:
    return settings.EVENTS_BROKER == "dapr"


def is_late(*, remind_at: datetime, fired_at: datetime) -> bool:
    return fired_at - remind_at >= LATE_AFTER


# --- Following the task ---------------------------------------------------------------------


def reminder_sync_for_task(change: TaskChange) -> None:
    """Bring the task's reminder in line with the task, inside the task change's transaction.

    Scheduled when the task has a reminder time and is not completed; moved when that time
    changes; cancelled when the task is completed, skipped, trashed or deleted or loses its
    reminder, and scheduled again when it comes back from the trash still to come. A reminder
    time that has already passed on a task that is itself already due reminds of nothing and is
    not scheduled; one that has passed on a task still to come fires at once (late).
    """
    task = change.task
    if task.remind_at is None and "remind_at" not in change.changed_fields:
        return  # no reminder now and none before: nothing can be scheduled
    now = timezone.now()
    reminder = Reminder.objects.select_for_update().filter(task_id=task.pk).first()
    if change.action in {"deleted", "purged"}:
        wanted, reason = None, "deleted"
    elif task.completed or task.skipped_at is not None:
        # A skipped occurrence is closed like a completed one.
        wanted, reason = None, "completed"
    else:
        wanted, reason = task.remind_at, "cleared"
    if change.action == "restored" and (wanted is None or wanted <= now):
        return  # back from the trash: reminded again only of what is still to come

    if wanted is None:
        if reminder is not None and reminder.state == ReminderState.SCHEDULED:
            _cancel(reminder, change.snapshot, reason=reason, now=now)
        return
    if (
        reminder is not None
        and reminder.fire_at == wanted
        and reminder.state != ReminderState.CANCELLED
    ):
        if reminder.state == ReminderState.SCHEDULED:
            _refresh_details(reminder, task, now=now)
        return  # same time: still scheduled, or already fired for this time
    if wanted <= now and (task.due_at is None or task.due_at <= now):
        if reminder is not None and reminder.state == ReminderState.SCHEDULED:
            _cancel(reminder, change.snapshot, reason="passed", now=now)
        return
    _schedule(reminder, task, change.snapshot, fire_at=wanted, now=now)


def _refresh_details(reminder: Reminder, task: Task, *, now: datetime) -> None:
    fields = []
    for name, value in (
        ("title", task.title),
        ("due_at", task.due_at),
        ("timezone", task.timezone),
    ):
        if getattr(reminder, name) != value:
            setattr(reminder, name, value)
            fields.append(name)
    if fields:
        reminder.updated_at = now
        reminder.save(update_fields=[*fields, "updated_at"])


def _schedule(
    reminder: Reminder | None, task: Task, snapshot: dict, *, fire_at: datetime, now: datetime
) -> None:
    previous = (
        reminder.fire_at
        if reminder is not None and reminder.state == ReminderState.SCHEDULED
        else None
    )
    if reminder is None:
        reminder = Reminder(task_id=task.pk, user_id=task.user_id, created_at=now, generation=1)
        creating = True
    else:
        reminder.generation += 1
        creating = False
    reminder.fire_at = fire_at
    reminder.due_at = task.due_at
    reminder.title = task.title
    reminder.timezone = task.timezone
    reminder.state = ReminderState.SCHEDULED
    reminder.fired_at = None
    reminder.job_synced = not dapr_mode()
    reminder.updated_at = now
    if creating:
        reminder.save(force_insert=True)
    else:
        reminder.save(
            update_fields=[
                "generation",
                "fire_at",
                "due_at",
                "title",
                "timezone",
                "state",
                "fired_at",
                "job_synced",
                "updated_at",
            ]
        )
    event_record(
        event_type=event_types.REMINDER_SCHEDULED,
        user_id=reminder.user_id,
        payload={
            "task_id": reminder.task_id,
            "task_data": snapshot,
            "remind_at": iso(reminder.fire_at),
            "previous_remind_at": iso(previous),
        },
    )
    _after_change(reminder, now=now)


def _cancel(reminder: Reminder, snapshot: dict, *, reason: str, now: datetime) -> None:
    reminder.state = ReminderState.CANCELLED
    reminder.job_synced = not dapr_mode()
    reminder.updated_at = now
    reminder.save(update_fields=["state", "job_synced", "updated_at"])
    _record_cancelled(reminder, snapshot, reason=reason)
    _after_change(reminder, now=now)


def _record_cancelled(reminder: Reminder, snapshot: dict, *, reason: str) -> None:
    event_record(
        event_type=event_types.REMINDER_CANCELLED,
        user_id=reminder.user_id,
        payload={
            "task_id": reminder.task_id,
            "task_data": snapshot,
            "remind_at": iso(reminder.fire_at),
            "reason": reason,
        },
    )


def _after_change(reminder: Reminder, *, now: datetime) -> None:
    if dapr_mode():
        from reminders import jobs

        # After commit, never inside the transaction; a failure leaves ``job_synced`` False
        # for the scheduler's re-sync loop. A process that may not own jobs (see
        # settings.REMINDER_JOBS_OWNER) leaves every reminder to the web process's loop.
        if settings.REMINDER_JOBS_OWNER:
            transaction.on_commit(partial(jobs.sync_reminder_job, reminder.pk), robust=True)
    elif reminder.state == ReminderState.SCHEDULED and reminder.fire_at <= now + WAKE_HORIZON:
        # Sent after commit (a NOTIFY inside the transaction would serialise the commits of
        # all notifying transactions); a rollback sends nothing.
        transaction.on_commit(partial(wakeup.announce, wakeup.REMINDERS_DUE), robust=True)


# --- Firing ---------------------------------------------------------------------------------


def _wants(task: Task | None, reminder: Reminder) -> bool:
    return (
        task is not None
        and task.user_id == reminder.user_id
        and not task.completed
        and task.skipped_at is None
        and task.deleted_at is None
        and task.remind_at == reminder.fire_at
    )


def _trigger_event(reminder: Reminder, task: Task, *, now: datetime, source: str) -> NewEvent:
    """The ``reminder.triggered`` of a firing (recorded by the caller), and its metrics."""
    lateness = max((now - reminder.fire_at).total_seconds(), 0.0)
    REMINDER_LATENESS.observe(lateness)
    REMINDERS_FIRED.labels(
        outcome="late" if is_late(remind_at=reminder.fire_at, fired_at=now) else "on_time"
    ).inc()
    logger.debug(
        "reminder for task %s fired by %s, %.3fs after its time", reminder.task_id, source, lateness
    )
    return NewEvent(
        event_type=event_types.REMINDER_TRIGGERED,
        user_id=reminder.user_id,
        payload={
            "task_id": reminder.task_id,
            "task_data": task_to_dict(task),
            "remind_at": iso(reminder.fire_at),
            "fired_at": iso(now),
        },
    )


def _mark_fired(reminder_ids: list[int], *, now: datetime) -> None:
    # job_synced: a fired one-shot job is gone from Dapr too.
    Reminder.objects.filter(pk__in=reminder_ids).update(
        state=ReminderState.FIRED, fired_at=now, job_synced=True, updated_at=now
    )


def _drop_unwanted(reminder: Reminder, task: Task | None, *, now: datetime) -> None:
    """The task no longer wants this reminder although the row says so: cancel it."""
    logger.warning("reminder %s no longer matches task %s", reminder.pk, reminder.task_id)
    reminder.state = ReminderState.CANCELLED
    reminder.updated_at = now
    reminder.save(update_fields=["state", "updated_at"])
    if task is not None and task.user_id == reminder.user_id:
        reason = "completed" if task.completed else "cleared"
        _record_cancelled(reminder, task_to_dict(task), reason=reason)
    REMINDERS_FIRED.labels(outcome="stale").inc()


@dataclass(frozen=True)
class FirePass:
    """One pass of ``reminders_fire_due``: how many due reminders it saw, how many it fired."""

    seen: int
    fired: int


def reminders_fire_due(*, limit: int = 100) -> FirePass:
    """Fire up to ``limit`` due reminders in one transaction (the polling scheduler's pass).

    The due reminders are read without locks; their users' locks are taken, waiting, in one
    sorted order (``lock_users``, as consumer batches do); only then are the reminders locked,
    ``FOR UPDATE SKIP LOCKED``, and those still due fired. Users before rows is the order of
    every writer, so this cannot deadlock with the task services or the consumers, and the
    transaction gets its id only after it holds its users' locks (``core.locking``). A
    second scheduler reading the same reminders waits for the first and finds them fired.
    """
    candidates = selectors.reminders_due(limit=limit)
    if not candidates:
        return FirePass(seen=0, fired=0)
    with transaction.atomic():
        lock_users(user_id for _, user_id in candidates)
        due = list(
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(
                pk__in=[pk for pk, _ in candidates],
                state=ReminderState.SCHEDULED,
                fire_at__lte=timezone.now(),
            )
            .order_by("fire_at", "pk")
        )
        fired = _fire_locked(due, source="scheduler")
    return FirePass(seen=len(candidates), fired=fired)


def reminder_fire_one(*, reminder_id: int, user_id: str) -> bool:
    """Fire one due reminder (the scheduler's fallback when a batch fails). False when there
    is nothing to fire: fired, moved or cancelled since, or in another scheduler's hands."""
    with transaction.atomic():
        lock_user(user_id)
        reminder = (
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(
                pk=reminder_id,
                user_id=user_id,
                state=ReminderState.SCHEDULED,
                fire_at__lte=timezone.now(),
            )
            .first()
        )
        if reminder is None:
            return False
        return _fire_locked([reminder], source="scheduler") == 1


def _fire_locked(reminders: list[Reminder], *, source: str) -> int:
    """Fire locked, scheduled reminders whose tasks still want them (drop the others): one
    read of their tasks, one write of their events, one update of their rows. Returns how
    many fired."""
    tasks = Task.objects.only(*REPRESENTATION_FIELDS, "user_id").in_bulk(
        [reminder.task_id for reminder in reminders]
    )
    now = timezone.now()
    fired, triggers = [], []
    for reminder in reminders:
        task = tasks.get(reminder.task_id)
        if not _wants(task, reminder):
            _drop_unwanted(reminder, task, now=now)
            continue
        triggers.append(_trigger_event(reminder, task, now=now, source=source))
        fired.append(reminder.pk)
    event_records(triggers)
    _mark_fired(fired, now=now)
    return len(fired)


FIRED = "fired"
ALREADY_FIRED = "already_fired"
STALE = "stale"
EARLY = "early"
# Dapr's scheduler keeps its own clock: a trigger this much before the reminder's time still fires.
JOB_CLOCK_SKEW = timedelta(seconds=60)


def reminder_fire_from_job(*, task_id: int, generation: int, remind_at: datetime) -> str:
    """Fire the reminder a Dapr job names, when the trigger is for the reminder's current
    generation and time and not before that time. ``FIRED`` or ``ALREADY_FIRED`` (a repeated
    trigger) mean "done"; ``STALE`` means the task no longer wants this trigger; ``EARLY`` means
    it came before its time, which fires nothing and has the job scheduled again."""
    user_id = Reminder.objects.filter(task_id=task_id).values_list("user_id", flat=True).first()
    if user_id is None:
        return STALE
    with transaction.atomic():
        lock_user(user_id)
        reminder = Reminder.objects.select_for_update().filter(task_id=task_id).first()
        if reminder is None:
            return STALE  # deleted with its task since the first read
        if reminder.generation != generation or reminder.fire_at != remind_at:
            return STALE
        if reminder.state == ReminderState.FIRED:
            return ALREADY_FIRED
        if reminder.state != ReminderState.SCHEDULED:
            return STALE
        now = timezone.now()
        if reminder.fire_at > now + JOB_CLOCK_SKEW:
            # Dapr ends a one-shot job once its trigger is answered; the re-sync loop
            # (``jobs.sync_pending_jobs``) schedules it again for its real time.
            reminder.job_synced = False
            reminder.updated_at = now
            reminder.save(update_fields=["job_synced", "updated_at"])
            logger.warning(
                "job trigger for task %s came %.0fs early",
                task_id,
                (reminder.fire_at - now).total_seconds(),
            )
            return EARLY
        return FIRED if _fire_locked([reminder], source="dapr") else STALE


# --- Notifications --------------------------------------------------------------------------


def _notification_event(event_type: str, notification: Notification) -> NewEvent:
    return NewEvent(
        event_type=event_type,
        user_id=notification.user_id,
        payload={
            "notification_id": notification.pk,
            "notification": notification_to_dict(notification),
        },
    )


def _record_notification_event(event_type: str, notification: Notification) -> None:
    event_records([_notification_event(event_type, notification)])


class Trigger(NamedTuple):
    """What a ``reminder.triggered`` says, as the notifications consumer reads it."""

    user_id: str
    task_id: int
    remind_at: datetime
    fired_at: datetime
    title: str
    due_at: datetime | None


def notifications_create_for_triggers(triggers: Sequence[Trigger]) -> list[Notification]:
    """One inbox entry per firing, for a batch of triggers; returns the entries created.

    A firing that already has its entry (a repeated trigger, or twice in the batch) gets no
    second one, and a trigger whose reminder does not belong to its user gets none. Every
    writer of a user's notifications holds the user's lock, so under the locks taken here the
    check for existing entries cannot race; the unique (reminder, remind_at) constraint backs it.
    """
    with transaction.atomic():
        lock_users(trigger.user_id for trigger in triggers)
        reminder_of = {
            (task_id, user_id): pk
            for pk, task_id, user_id in Reminder.objects.filter(
                task_id__in={trigger.task_id for trigger in triggers}
            ).values_list("pk", "task_id", "user_id")
        }
        wanted: dict[tuple[int, datetime], Trigger] = {}
        for trigger in triggers:
            reminder_id = reminder_of.get((trigger.task_id, trigger.user_id))
            if reminder_id is None:
                logger.warning(
                    "reminder.triggered for task %s: no reminder of this user; ignored",
                    trigger.task_id,
                )
                continue
            wanted.setdefault((reminder_id, trigger.remind_at), trigger)
        if not wanted:
            return []
        existing = set(
            Notification.objects.filter(
                reminder_id__in={reminder_id for reminder_id, _ in wanted}
            ).values_list("reminder_id", "remind_at")
        )
        now = timezone.now()
        created = Notification.objects.bulk_create(
            [
                Notification(
                    user_id=trigger.user_id,
                    kind=Notification.KIND_REMINDER,
                    reminder_id=reminder_id,
                    task_id=trigger.task_id,
                    title=trigger.title,
                    due_at=trigger.due_at,
                    remind_at=remind_at,
                    late=is_late(remind_at=remind_at, fired_at=trigger.fired_at),
                    created_at=now,
                )
                for (reminder_id, remind_at), trigger in wanted.items()
                if (reminder_id, remind_at) not in existing
            ]
        )
        event_records(
            [_notification_event(event_types.NOTIFICATION_CREATED, entry) for entry in created]
        )
        return created


def _locked_notification(*, user_id: str, notification_id: int) -> Notification:
    try:
        return Notification.objects.select_for_update().get(pk=notification_id, user_id=user_id)
    except (Notification.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotificationNotFound(notification_id) from None


def notification_mark_read(*, user_id: str, notification_id: int) -> Notification:
    """Mark read; reading a read notification changes nothing and records nothing."""
    with transaction.atomic():
        lock_user(user_id)
        notification = _locked_notification(user_id=user_id, notification_id=notification_id)
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
            _record_notification_event(event_types.NOTIFICATION_READ, notification)
        return notification


def notification_dismiss(*, user_id: str, notification_id: int) -> Notification:
    """Take it out of the inbox (it counts as read); dismissing twice records one event."""
    with transaction.atomic():
        lock_user(user_id)
        notification = _locked_notification(user_id=user_id, notification_id=notification_id)
        if notification.dismissed_at is None:
            now = timezone.now()
            notification.dismissed_at = now
            notification.read_at = notification.read_at or now
            notification.save(update_fields=["dismissed_at", "read_at"])
            _record_notification_event(event_types.NOTIFICATION_DISMISSED, notification)
        return notification
