"""A task's series: its next due times (``occurrences/``) and skipping one occurrence
(``skip/``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from tasks import selectors, services
from tasks.api.base import ThrottledView
from tasks.api.params import parse_query
from tasks.api.serializers import OccurrencesQuerySerializer, OccurrencesSerializer, TaskSerializer
from tasks.api.views import ERROR_RESPONSES, IF_MATCH_PARAMETER, _expected_version, _task_response


class TaskOccurrencesView(ThrottledView):
    @extend_schema(
        operation_id="tasks_occurrences",
        parameters=[OccurrencesQuerySerializer],
        responses={200: OccurrencesSerializer, **ERROR_RESPONSES},
        description="The next `count` due times of the task's series from this task on: its "
        "open instances (skipped and done ones left out, one moved on its own where it was "
        "moved to), then those still to be created, worked out by the code that creates them, "
        "up to the series' end (COUNT, UNTIL). A task that does not repeat: 400 "
        "`not_recurring`.",
    )
    def get(self, request: Request, task_id: int) -> Response:
        query = parse_query(request.query_params, OccurrencesQuerySerializer)
        found = selectors.task_occurrences(
            user_id=request.user.id, task_id=task_id, count=query["count"]
        )
        task = found.task
        return Response(
            {
                "task_id": task.pk,
                "timezone": task.timezone,
                "repeat_from": task.repeat_from,
                "results": [occurrence.to_dict() for occurrence in found.items],
            }
        )


class TaskSkipView(ThrottledView):
    @extend_schema(
        operation_id="tasks_skip",
        request=None,
        parameters=[IF_MATCH_PARAMETER],
        responses={
            200: TaskSerializer,
            **ERROR_RESPONSES,
            409: OpenApiResponse(
                description="`not_recurring` (the task does not repeat), `already_completed`, "
                "or a stale `If-Match`."
            ),
        },
        description="Skip this occurrence: it is closed without being done (`skipped_at`), "
        "and the series' next instance is created as after a completion. Skipping it again "
        "changes nothing.",
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = services.task_skip(
            user_id=request.user.id,
            task_id=task_id,
            expected_version=_expected_version(request, None),
        )
        return _task_response(task)
