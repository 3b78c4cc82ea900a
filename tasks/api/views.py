"""The task REST API: thin views over ``tasks.services`` and ``tasks.selectors``."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from tasks import selectors, services
from tasks.api.base import ThrottledView
from tasks.api.params import parse_list_params, reject_unknown
from tasks.api.serializers import (
    TaskListQuerySerializer,
    TaskPageSerializer,
    TaskPatchSerializer,
    TaskSerializer,
    TaskWriteSerializer,
)
from tasks.api.throttles import LIST
from tasks.errors import TaskValidationError
from tasks.representation import task_to_dict

ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input: `error.code`, `error.fields[]`."),
    401: OpenApiResponse(description="Missing, invalid or expired token."),
    404: OpenApiResponse(description="No such task for this user."),
    409: OpenApiResponse(description="Stale `version` / `If-Match`, or a clash in a series."),
    429: OpenApiResponse(description="Rate limited; see `Retry-After`."),
}
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')

IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    {"type": "string", "pattern": r'^\s*((W/)?"?[0-9]{1,9}"?)?\s*$'},
    OpenApiParameter.HEADER,
    required=False,
    description='Expected version as an ETag, e.g. `"3"`. A stale one answers 409.',
)


def _expected_version(request: Request, body_version: int | None) -> int | None:
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        return body_version
    match = _IF_MATCH.match(header)
    if not match:
        raise TaskValidationError(
            'If-Match must be a version such as "3".', field="If-Match", code="invalid"
        )
    header_version = int(match.group(1))
    if body_version is not None and body_version != header_version:
        raise TaskValidationError("If-Match and version disagree.", field="version", code="invalid")
    return header_version


def _task_response(task, *, status_code: int = status.HTTP_200_OK) -> Response:
    response = Response(task_to_dict(task), status=status_code)
    response["ETag"] = f'"{task.version}"'
    return response


WRITE_FIELDS = set(TaskWriteSerializer().fields)


def _validated_body(request: Request, serializer_class) -> dict:
    if not isinstance(request.data, dict):
        raise TaskValidationError(
            "The body must be a JSON object.", field=None, code="invalid_body"
        )
    # Strict: a read-only field (id, created_at, ...) or a misspelt one is an error, not ignored.
    reject_unknown(request.data, WRITE_FIELDS, kind="field")
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items() if k in WRITE_FIELDS}


class TaskListCreateView(ThrottledView):
    read_budget = LIST

    @extend_schema(
        operation_id="tasks_list",
        parameters=[TaskListQuerySerializer],
        responses={200: TaskPageSerializer, **ERROR_RESPONSES},
        description="Search (`q`, web-search syntax, last word as prefix), filter, sort and page "
        "the caller's tasks. Unknown parameters are refused.",
    )
    def get(self, request: Request) -> Response:
        filters, limit, offset = parse_list_params(request.query_params)
        page = selectors.task_list_for_user(
            user_id=request.user.id, filters=filters, limit=limit, offset=offset
        )
        return Response(
            {
                "count": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "results": page.items,
            }
        )

    @extend_schema(
        operation_id="tasks_create",
        request=TaskWriteSerializer,
        responses={201: TaskSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        data = _validated_body(request, TaskWriteSerializer)
        data.pop("version", None)
        completed = data.pop("completed", False)
        task = services.task_create(
            user_id=request.user.id,
            title=data["title"],
            description=data.get("description"),
            priority=data.get("priority", "medium"),
            tags=data.get("tags"),
            due_date=data.get("due_date"),
            reminder_time=data.get("reminder_time"),
            recurrence_pattern=data.get("recurrence_pattern"),
            timezone_name=data.get("timezone"),
        )
        if completed:
            task = services.task_complete(user_id=request.user.id, task_id=task.pk)
        response = _task_response(task, status_code=status.HTTP_201_CREATED)
        response["Location"] = f"/api/tasks/{task.pk}/"
        return response


class TaskDetailView(ThrottledView):
    @extend_schema(
        operation_id="tasks_retrieve", responses={200: TaskSerializer, **ERROR_RESPONSES}
    )
    def get(self, request: Request, task_id: int) -> Response:
        return _task_response(selectors.task_get_for_user(user_id=request.user.id, task_id=task_id))

    def _update(self, request: Request, task_id: int, *, partial: bool) -> Response:
        data = _validated_body(request, TaskPatchSerializer if partial else TaskWriteSerializer)
        expected = _expected_version(request, data.pop("version", None))
        if not partial:
            # PUT replaces every editable field; what is left out goes back to its default.
            defaults = {
                "description": "",
                "priority": "medium",
                "tags": [],
                "due_date": None,
                "reminder_time": None,
                "recurrence_pattern": "none",
                "completed": False,
            }
            data = {**defaults, **data}
        task, _ = services.task_update(
            user_id=request.user.id, task_id=task_id, changes=data, expected_version=expected
        )
        return _task_response(task)

    @extend_schema(
        operation_id="tasks_update",
        request=TaskWriteSerializer,
        parameters=[IF_MATCH_PARAMETER],
        responses={200: TaskSerializer, **ERROR_RESPONSES},
    )
    def put(self, request: Request, task_id: int) -> Response:
        return self._update(request, task_id, partial=False)

    @extend_schema(
        operation_id="tasks_partial_update",
        request=TaskPatchSerializer,
        parameters=[IF_MATCH_PARAMETER],
        responses={200: TaskSerializer, **ERROR_RESPONSES},
    )
    def patch(self, request: Request, task_id: int) -> Response:
        return self._update(request, task_id, partial=True)

    @extend_schema(
        operation_id="tasks_destroy",
        parameters=[
            IF_MATCH_PARAMETER,
            OpenApiParameter(
                "stop_series",
                bool,
                required=False,
                description="Also end the task's recurring series.",
            ),
        ],
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request: Request, task_id: int) -> Response:
        reject_unknown(request.query_params, {"stop_series"}, kind="parameter")
        raw = request.query_params.get("stop_series", "false").lower()
        if raw not in {"true", "false", "1", "0"}:
            raise TaskValidationError(
                "stop_series must be true or false.", field="stop_series", code="invalid"
            )
        services.task_delete(
            user_id=request.user.id,
            task_id=task_id,
            stop_series=raw in {"true", "1"},
            expected_version=_expected_version(request, None),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskCompleteView(ThrottledView):
    @extend_schema(
        operation_id="tasks_complete",
        request=None,
        parameters=[IF_MATCH_PARAMETER],
        responses={200: TaskSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = services.task_complete(
            user_id=request.user.id,
            task_id=task_id,
            expected_version=_expected_version(request, None),
        )
        return _task_response(task)


class TaskReopenView(ThrottledView):
    @extend_schema(
        operation_id="tasks_reopen",
        request=None,
        parameters=[IF_MATCH_PARAMETER],
        responses={200: TaskSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = services.task_reopen(
            user_id=request.user.id,
            task_id=task_id,
            expected_version=_expected_version(request, None),
        )
        return _task_response(task)
