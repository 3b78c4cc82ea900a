"""``POST /api/tasks/<id>/undo/``: take back the caller's latest change to a task."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from events.actors import current_actor
from tasks import services
from tasks.api.base import ThrottledView
from tasks.api.serializers import TaskSerializer
from tasks.api.views import ERROR_RESPONSES
from tasks.models import UNDO_WINDOW

UNDO_MINUTES = int(UNDO_WINDOW.total_seconds() // 60)


class UndoneSerializer(serializers.Serializer):
    event_id = serializers.UUIDField(help_text="The event of the change that was undone.")
    event_type = serializers.CharField()


class UndoSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["reverted", "restored", "trashed"],
        help_text="reverted: fields set back (a completion reopened, a reopen completed); "
        "restored: a deletion undone; trashed: a creation undone.",
    )
    undone = UndoneSerializer()
    task = TaskSerializer(help_text="The task after the undo.")


def undo_to_dict(undone: services.Undone) -> dict:
    return {
        "action": undone.action,
        "undone": {
            "event_id": str(undone.undone_event_id),
            "event_type": undone.undone_event_type,
        },
        "task": undone.task,
    }


class TaskUndoView(ThrottledView):
    @extend_schema(
        operation_id="tasks_undo",
        request=None,
        responses={
            200: UndoSerializer,
            **ERROR_RESPONSES,
            409: OpenApiResponse(
                description="`conflict`: someone changed the task after your change; "
                f"`nothing_to_undo`: this token made no change to it in the last "
                f"{UNDO_MINUTES} minutes; `cannot_undo`: a permanent deletion."
            ),
        },
        description=f"Undo the latest change to the task if this token made it in the last "
        f"{UNDO_MINUTES} minutes: a new change with its own event (fields set back, a "
        "deletion restored, a creation moved to the trash), never a rewrite of history.",
    )
    def post(self, request: Request, task_id: int) -> Response:
        undone = services.task_undo(
            user_id=request.user.id, task_id=task_id, token_id=current_actor().token_id
        )
        return Response(undo_to_dict(undone))
