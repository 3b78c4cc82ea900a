"""``POST /job/<name>``: Dapr calls it when a reminder's job comes due.

It exists only with the Dapr broker; otherwise it answers what any unknown path answers. No JWT
(the caller is the sidecar): the ``dapr-api-token`` header must carry ``APP_API_TOKEN``, and
without a configured token every call is refused, with the same 401 whatever the job's name.

The body is the job's data, in any of the forms Dapr hands it back, and must name the
reminder's generation and time. Answers: 200 handled (fired now, or by an earlier delivery of
the same trigger); 404 the task no longer wants this trigger (completed, deleted, moved), which
tells Dapr to drop it; 425 the trigger came before its time (the job is scheduled again); 4xx JSON
errors for bad input, which change nothing.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from core.errors import error_body
from core.parsers import InvalidJSON, load_json
from reminders import services
from reminders.jobs import task_id_from_job_name

logger = logging.getLogger(__name__)

# Dapr hands the data back wrapped at most this many times (StringValue, JSON string, object).
_MAX_UNWRAP = 3


class _BadBody(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _loads(text: str | bytes) -> object:
    try:
        return load_json(text)
    except InvalidJSON:
        raise _BadBody("The body is not valid JSON.") from None


def _unpack_protobuf(body: bytes) -> str:
    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.protobuf.message import Error as ProtobufError
    from google.protobuf.wrappers_pb2 import StringValue

    text = StringValue()
    try:
        unpacked = AnyMessage.FromString(body).Unpack(text)
    except ProtobufError:
        unpacked = False
    if not unpacked:
        raise _BadBody("The body is neither JSON nor a packed StringValue.")
    return text.value


def _decode(body: bytes) -> dict:
    """The job's JSON data, as Dapr hands it back: the object itself, the ``StringValue`` it
    was packed in (``{"@type": ..., "value": "<json>"}``), a JSON string, or the packed
    protobuf bytes. An empty body is an empty object."""
    if not body:
        return {}
    try:
        value = _loads(body)
    except _BadBody:
        value = _unpack_protobuf(body)
    for _ in range(_MAX_UNWRAP):
        if isinstance(value, dict) and isinstance(value.get("value"), str | dict):
            value = value["value"]
        elif isinstance(value, str):
            value = _loads(value)
        else:
            break
    if not isinstance(value, dict):
        raise _BadBody("The job data must be a JSON object.")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def _field(field: str, code: str, message: str) -> dict:
    return {"field": field, "code": code, "message": message}


class _InvalidFields(Exception):
    def __init__(self, fields: list[dict]):
        super().__init__(fields[0]["message"])
        self.fields = fields


def _parse_remind_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _trigger_fields(data: dict) -> tuple[int | None, int, datetime]:
    """The task id the data names (if any), the generation and the reminder time it was
    scheduled for; ``_InvalidFields`` names every field that is missing or wrong."""
    fields = []
    task_id = data.get("task_id")
    if task_id is not None and not _is_int(task_id):
        fields.append(_field("task_id", "invalid", "task_id must be an integer."))
    generation = data.get("generation")
    if generation is None:
        fields.append(_field("generation", "required", "The job data must carry generation."))
    elif not _is_int(generation) or generation < 1:
        fields.append(_field("generation", "invalid", "generation must be a positive integer."))
    remind_at = _parse_remind_at(data.get("remind_at"))
    if data.get("remind_at") is None:
        fields.append(_field("remind_at", "required", "The job data must carry remind_at."))
    elif remind_at is None:
        fields.append(
            _field("remind_at", "invalid", "remind_at must be an RFC 3339 date-time with offset.")
        )
    if fields:
        raise _InvalidFields(fields)
    assert remind_at is not None  # no field error: it parsed
    return task_id, generation, remind_at


def _error(status: int, code: str, message: str, fields: list[dict] | None = None):
    return JsonResponse(error_body(code, message, fields), status=status)


def _token_ok(request) -> bool:
    expected = settings.APP_API_TOKEN
    if not expected:
        logger.warning("job trigger refused: APP_API_TOKEN is not set")
        return False
    given = request.headers.get("dapr-api-token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
def job_trigger(request, name: str):
    if not services.dapr_mode():
        raise Http404  # not routed without Dapr: the same answer as any unknown path
    if not _token_ok(request):
        return _error(401, "invalid_token", "Missing or wrong dapr-api-token.")
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Only POST is allowed.")
        response["Allow"] = "POST"
        return response
    task_id = task_id_from_job_name(name)
    if task_id is None:
        return JsonResponse({"status": "unknown_job"}, status=404)
    try:
        data = _decode(request.body)
    except RequestDataTooBig:
        return _error(
            413,
            "too_large",
            f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        )
    except _BadBody as exc:
        return _error(400, "invalid_json", exc.message)

    try:
        named_task, generation, remind_at = _trigger_fields(data)
    except _InvalidFields as exc:
        return _error(400, "invalid", exc.fields[0]["message"], exc.fields)
    if named_task is not None and named_task != task_id:
        return JsonResponse({"status": services.STALE}, status=404)

    outcome = services.reminder_fire_from_job(
        task_id=task_id, generation=generation, remind_at=remind_at
    )
    logger.debug("job %s: %s", name, outcome)
    if outcome == services.STALE:
        return JsonResponse({"status": outcome}, status=404)
    if outcome == services.EARLY:
        return JsonResponse({"status": outcome}, status=425)
    return JsonResponse({"status": outcome})
