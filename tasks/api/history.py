"""``GET /api/tasks/<id>/history/``: what happened to one of the caller's tasks, oldest first."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from tasks import selectors
from tasks.api.base import ThrottledView
from tasks.api.params import parse_query
from tasks.api.throttles import LIST
from tasks.models import MAX_OFFSET, TaskHistory
from tasks.representation import iso

MAX_LIMIT = 200


class HistoryQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)


class HistoryEntrySerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    sequence = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    changed_fields = serializers.ListField(child=serializers.CharField())
    previous = serializers.DictField()
    task = serializers.DictField(help_text="The task after this event (before it, for a delete).")
    actor = serializers.DictField(
        allow_null=True,
        help_text="Who made the change: `surface` (rest, mcp, admin, system), the MCP `client` "
        "(`name`, `version`), `token_id`; null for changes recorded before actors were.",
    )


class HistoryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = HistoryEntrySerializer(many=True)


def history_entry_to_dict(entry: TaskHistory) -> dict:
    return {
        "event_id": str(entry.event_id),
        "event_type": entry.event_type,
        "sequence": entry.sequence,
        "timestamp": iso(entry.occurred_at),
        "changed_fields": list(entry.changed_fields),
        "previous": entry.previous,
        "task": entry.task_data,
        "actor": entry.actor,
    }


class TaskHistoryView(ThrottledView):
    read_budget = LIST

    @extend_schema(
        operation_id="tasks_history",
        parameters=[HistoryQuerySerializer],
        responses={
            200: HistoryPageSerializer,
            400: OpenApiResponse(description="Invalid `limit` / `offset`."),
            401: OpenApiResponse(description="Missing, invalid or expired token."),
            404: OpenApiResponse(description="No such task (or history) for this user."),
            429: OpenApiResponse(description="Rate limited; see `Retry-After`."),
        },
        description="The task's events, oldest first, as the audit consumer recorded them. "
        "A deleted task keeps its history.",
    )
    def get(self, request: Request, task_id: int) -> Response:
        query = parse_query(request.query_params, HistoryQuerySerializer)
        page = selectors.task_history_for_user(
            user_id=request.user.id,
            task_id=task_id,
            limit=query["limit"],
            offset=query["offset"],
        )
        if page.total == 0:
            # No history yet: an existing task of the caller's (its first event is on its
            # way) answers an empty list; anything else is "not found".
            selectors.task_get_for_user(user_id=request.user.id, task_id=task_id)
        return Response(
            {
                "count": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "results": [history_entry_to_dict(entry) for entry in page.entries],
            }
        )
