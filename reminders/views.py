"""``POST /job/<name>``: Dapr calls it when a reminder's job comes due.

No JWT (the caller is the sidecar); when ``APP_API_TOKEN`` is set the sidecar's
``dapr-api-token`` header must carry it. 200 means handled (fired now, or fired by an earlier
delivery of the same trigger); 404 means the task no longer wants this trigger (completed,
deleted, or its reminder moved since) and tells Dapr to drop it.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reminders import services
from reminders.jobs import task_id_from_job_name

logger = logging.getLogger(__name__)


def _decode(body: bytes) -> dict:
    """The job's JSON data, as Dapr hands it back: the object itself, the ``StringValue`` it
    was packed in (``{"@type": ..., "value": "<json>"}``), a JSON string, or the packed
    protobuf bytes."""
    value: object = None
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        try:
            from google.protobuf.any_pb2 import Any as AnyMessage
            from google.protobuf.wrappers_pb2 import StringValue

            packed = AnyMessage.FromString(body)
            text = StringValue()
            if packed.Unpack(text):
                value = text.value
        except Exception:
            value = None
    for _ in range(3):
        if isinstance(value, dict) and isinstance(value.get("value"), str | dict):
            value = value["value"]
        elif isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return {}
        else:
            break
    return value if isinstance(value, dict) else {}


def _token_ok(request) -> bool:
    expected = settings.APP_API_TOKEN
    if not expected:
        return True
    given = request.headers.get("dapr-api-token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
@require_POST
def job_trigger(request, name: str):
    if not _token_ok(request):
        return JsonResponse(
            {"error": {"code": "invalid_token", "message": "Missing or wrong dapr-api-token."}},
            status=401,
        )
    task_id = task_id_from_job_name(name)
    if task_id is None:
        return JsonResponse({"status": "unknown_job"}, status=404)
    data = _decode(request.body)
    if "task_id" in data and data["task_id"] != task_id:
        return JsonResponse({"status": "stale"}, status=404)
    generation = data.get("generation")
    remind_at = data.get("remind_at")
    outcome = services.reminder_fire_from_job(
        task_id=task_id,
        generation=generation if isinstance(generation, int) else None,
        remind_at=parse_datetime(remind_at) if isinstance(remind_at, str) else None,
    )
    logger.debug("job %s: %s", name, outcome)
    if outcome == services.STALE:
        return JsonResponse({"status": "stale"}, status=404)
    return JsonResponse({"status": outcome})
