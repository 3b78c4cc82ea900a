"""Reminders as Dapr jobs, through the official SDK's Jobs API.

One job per task, named ``reminder-task-<task id>``, one-shot at the reminder time (RFC 3339 in
the task's own zone, with its offset), carrying JSON that names the reminder generation it was
scheduled for. Scheduling overwrites, so a moved reminder just replaces its job.

Everything here runs after the task change committed (``transaction.on_commit``) or in the
re-sync loop, never inside the change's transaction. The Jobs API is brought in line with the
reminder row under the row's lock, so two syncs of the same reminder cannot leave an older
state in Dapr; a failure leaves ``job_synced`` False and ``sync_pending_jobs`` retries it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import namedtuple
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
from django.db import transaction
from django.utils import timezone

from reminders.models import Reminder, ReminderState
from reminders.representation import job_data

logger = logging.getLogger(__name__)

JOB_PREFIX = "reminder-task-"
_JOB_NAME = re.compile(r"^reminder-task-([1-9][0-9]{0,17})$")
# A call to the sidecar that takes longer than this fails (and is retried later), so a hung
# sidecar never holds a reminder row's lock for long. DAPR_API_TIMEOUT_SECONDS, when set,
# applies first.
CALL_DEADLINE_SECONDS = 5.0


def job_name(task_id: int) -> str:
    return f"{JOB_PREFIX}{task_id}"


def task_id_from_job_name(name: str) -> int | None:
    match = _JOB_NAME.match(name or "")
    return int(match.group(1)) if match else None


def job_due_time(fire_at: datetime, tz_name: str) -> str:
    """RFC 3339 with the offset of the task's zone, e.g. ``2030-03-30T09:00:00+01:00``."""
    local = fire_at.astimezone(ZoneInfo(tz_name))
    return local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")


_CallDetails = namedtuple(
    "_CallDetails",
    ["method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"],
)


class _CallDetailsWithDeadline(_CallDetails, grpc.ClientCallDetails):
    pass


class _Deadline(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.timeout is None:
            client_call_details = _CallDetailsWithDeadline(
                client_call_details.method,
                CALL_DEADLINE_SECONDS,
                client_call_details.metadata,
                client_call_details.credentials,
                getattr(client_call_details, "wait_for_ready", None),
                getattr(client_call_details, "compression", None),
            )
        return continuation(client_call_details, request)


_client_lock = threading.Lock()
_client = None


def _get_client():
    """One client per process. It reads the SDK's own environment (``DAPR_GRPC_ENDPOINT``,
    ``DAPR_HTTP_ENDPOINT``, ...), sends the app's ``DAPR_API_TOKEN`` on every call
    (``events.brokers.dapr.dapr_client``) and waits for the sidecar's health endpoint the
    first time."""
    global _client
    with _client_lock:
        if _client is None:
            from events.brokers.dapr import dapr_client

            _client = dapr_client(interceptors=[_Deadline()])
        return _client


def close_client() -> None:
    """Drop the process's client (tests and a changed sidecar address)."""
    global _client
    with _client_lock:
        if _client is not None:
            try:
                _client.close()
            finally:
                _client = None


def _job_payload(reminder: Reminder):
    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.protobuf.wrappers_pb2 import StringValue

    data = AnyMessage()
    data.Pack(StringValue(value=json.dumps(job_data(reminder), separators=(",", ":"))))
    return data


def _schedule_job(client, reminder: Reminder) -> None:
    from dapr.clients import Job

    # No failure policy: Dapr's default retries a trigger that failed; the app answers 404
    # for a stale one, which Dapr never retries.
    job = Job(
        name=job_name(reminder.task_id),
        due_time=job_due_time(reminder.fire_at, reminder.timezone),
        data=_job_payload(reminder),
    )
    client.schedule_job(job, overwrite=True)


def _delete_job(client, task_id: int) -> None:
    try:
        client.delete_job(job_name(task_id))
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise


def sync_reminder_job(reminder_id: int) -> bool:
    """Make the Jobs API hold what the reminder row says. True when it does afterwards."""
    try:
        client = _get_client()
    except Exception:
        logger.exception("Dapr sidecar unavailable; reminder %s stays unsynced", reminder_id)
        return False
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update().filter(pk=reminder_id).first()
        if reminder is None or reminder.job_synced:
            return True
        try:
            if reminder.state == ReminderState.SCHEDULED:
                _schedule_job(client, reminder)
            elif reminder.state == ReminderState.CANCELLED:
                _delete_job(client, reminder.task_id)
        except Exception:
            logger.exception(
                "Dapr Jobs call failed; reminder %s (task %s) stays unsynced",
                reminder.pk,
                reminder.task_id,
            )
            return False
        reminder.job_synced = True
        reminder.save(update_fields=["job_synced"])
    return True


def sync_pending_jobs(
    *, older_than: timedelta = timedelta(seconds=2), limit: int = 200
) -> tuple[int, int]:
    """Retry reminders whose Jobs API call failed or never ran. Returns (synced, failed).
    Rows changed in the last ``older_than`` are left to their own after-commit sync."""
    cutoff = timezone.now() - older_than
    ids = list(
        Reminder.objects.filter(job_synced=False, updated_at__lte=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    synced = failed = 0
    for reminder_id in ids:
        if sync_reminder_job(reminder_id):
            synced += 1
        else:
            failed += 1
    return synced, failed
