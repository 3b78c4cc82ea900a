"""The trash: deleted tasks, kept ``TRASH_RETENTION`` and restorable until the retention sweep
purges them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from tasks import selectors, services
from tasks.api.base import ThrottledView
from tasks.api.params import parse_query
from tasks.api.serializers import TaskSerializer, TrashPageSerializer, TrashQuerySerializer
from tasks.api.throttles import LIST
from tasks.api.views import ERROR_RESPONSES, _task_response


class TaskTrashView(ThrottledView):
    read_budget = LIST

    @extend_schema(
        operation_id="tasks_trash",
        parameters=[TrashQuerySerializer],
        responses={200: TrashPageSerializer, **ERROR_RESPONSES},
        description="The caller's deleted tasks, most recently deleted first, each with "
        "`deleted_at` and `purge_after`.",
    )
    def get(self, request: Request) -> Response:
        query = parse_query(request.query_params, TrashQuerySerializer)
        page = selectors.task_trash_for_user(
            user_id=request.user.id, limit=query["limit"], offset=query["offset"]
        )
        return Response(
            {
                "count": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "results": page.fragments(),
            }
        )


class TaskRestoreView(ThrottledView):
    @extend_schema(
        operation_id="tasks_restore",
        request=None,
        responses={
            200: TaskSerializer,
            **ERROR_RESPONSES,
            409: OpenApiResponse(description="`not_in_trash`: the task was not deleted."),
        },
        description="Take a task out of the trash as it was, with its history; its reminder "
        "is scheduled again when still to come.",
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = services.task_restore(user_id=request.user.id, task_id=task_id)
        return _task_response(task)
