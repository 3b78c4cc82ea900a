"""``GET /api/changes/?since=<sequence>&limit=N``: what changed for the caller, without a socket.

The feed is the caller's event log (the sequence the WebSocket resume uses), oldest first, each
event with its task as it is now, or ``deleted: true`` when the task is gone or in the trash.
A ``since`` whose next event has expired (``EVENTS_RETENTION_DAYS``), or that was never handed
out, answers 410 ``resync_required``: start again from ``GET /api/tasks/``, whose ``sequence``
is the one to poll from.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import DomainError
from events.selectors import Change, changes_for_user_since
from tasks import selectors
from tasks.api.base import ThrottledView
from tasks.api.params import reject_unknown
from tasks.api.serializers import TaskSerializer
from tasks.api.throttles import LIST
from tasks.errors import TaskValidationError

DEFAULT_CHANGES = 100
MAX_CHANGES = 1000
# The payload key that names the task an event is about (every task.* and reminder.* event).
SUBJECT_KEY = "task_id"
_MAX_SEQUENCE = 2**63 - 1


class ResyncRequired(DomainError):
    status = 410
    code = "resync_required"


class ChangeSerializer(serializers.Serializer):
    """One change (documents the shape; built by hand)."""

    sequence = serializers.IntegerField()
    event_type = serializers.CharField()
    event_id = serializers.UUIDField()
    timestamp = serializers.DateTimeField()
    task_id = serializers.IntegerField(allow_null=True)
    task = TaskSerializer(required=False, help_text="The task as it is now.")
    deleted = serializers.BooleanField(
        required=False, help_text="True when the task no longer exists or is in the trash."
    )
    payload = serializers.DictField(
        required=False, help_text="The event's payload, for events about no task."
    )


class ChangePageSerializer(serializers.Serializer):
    changes = ChangeSerializer(many=True)
    next_since = serializers.IntegerField(help_text="The `since` of the next call.")
    has_more = serializers.BooleanField()


def _integer_param(request: Request, name: str, *, default: int | None, low: int, high: int):
    values = request.query_params.getlist(name)
    if not values:
        if default is None:
            raise TaskValidationError(f"{name} is required.", field=name, code="required")
        return default
    if len(values) > 1:
        raise TaskValidationError(f"Give {name} once.", field=name, code="multiple_values")
    value = values[0]
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise TaskValidationError(f"{name} must be an integer.", field=name, code="invalid")
    number = int(value)
    if number < low:
        raise TaskValidationError(f"{name} must be at least {low}.", field=name, code="min_value")
    if number > high:
        raise TaskValidationError(f"{name} must be at most {high}.", field=name, code="max_value")
    return number


def change_item(change: Change, tasks: dict[int, dict]) -> dict:
    item: dict = {
        "sequence": change.sequence,
        "event_type": change.event_type,
        "event_id": change.event_id,
        "timestamp": change.timestamp,
        "task_id": change.subject_id,
    }
    if change.subject_id is None:
        item["payload"] = change.payload
    elif change.subject_id in tasks:
        item["task"] = tasks[change.subject_id]
    else:
        item["deleted"] = True
    return item


class ChangesView(ThrottledView):
    read_budget = LIST

    @extend_schema(
        operation_id="changes_list",
        parameters=[
            OpenApiParameter(
                "since",
                {"type": "integer", "minimum": 0, "maximum": _MAX_SEQUENCE},
                required=True,
                description="The last sequence the client has (0: from the first event); "
                "`sequence` of `GET /api/tasks/` after a resync.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES},
                required=False,
                description=f"At most this many changes (default {DEFAULT_CHANGES}, "
                f"max {MAX_CHANGES}).",
            ),
        ],
        responses={
            200: ChangePageSerializer,
            400: OpenApiResponse(description="Invalid `since` or `limit`."),
            401: OpenApiResponse(description="Missing, invalid or expired token."),
            410: OpenApiResponse(
                description="`resync_required`: events after `since` are no longer kept; "
                "reload `GET /api/tasks/` and continue from its `sequence`."
            ),
            429: OpenApiResponse(description="Rate limited; see `Retry-After`."),
        },
        description="The caller's changes after `since`, oldest first, each with the task as "
        "it is now (or `deleted: true`).",
    )
    def get(self, request: Request) -> Response:
        reject_unknown(request.query_params, {"since", "limit"}, kind="parameter")
        since = _integer_param(request, "since", default=None, low=0, high=_MAX_SEQUENCE)
        limit = _integer_param(request, "limit", default=DEFAULT_CHANGES, low=1, high=MAX_CHANGES)
        page = changes_for_user_since(
            user_id=request.user.id, after_sequence=since, limit=limit, subject_key=SUBJECT_KEY
        )
        if page.gone:
            raise ResyncRequired(
                f"Changes after sequence {since} are no longer available; reload the task list "
                "(GET /api/tasks/) and continue from its sequence.",
                field="since",
            )
        tasks = selectors.task_representations_in_bulk(
            user_id=request.user.id,
            task_ids={c.subject_id for c in page.changes if c.subject_id is not None},
        )
        return Response(
            {
                "changes": [change_item(change, tasks) for change in page.changes],
                "next_since": page.changes[-1].sequence if page.changes else since,
                "has_more": page.has_more,
            }
        )
