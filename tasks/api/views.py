"""The task REST API: thin views over ``tasks.services`` and ``tasks.selectors``."""

from __future__ import annotations

import re
from functools import cache

import orjson
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from tasks import selectors, services
from tasks.api.base import ThrottledView
from tasks.api.params import parse_list_params, reject_unknown
from tasks.api.serializers import (
    TaskListQuerySerializer,
    TaskPageSerializer,
    TaskPatchSerializer,
    TaskReplaceSerializer,
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


def _query_flag(request: Request, name: str) -> bool:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise TaskValidationError(f"Give {name} once.", field=name, code="multiple_values")
    raw = values[0].lower() if values else "false"
    if raw not in {"true", "false", "1", "0"}:
        raise TaskValidationError(f"{name} must be true or false.", field=name, code="invalid")
    return raw in {"true", "1"}


def _task_response(task, *, status_code: int = status.HTTP_200_OK) -> Response:
    response = Response(task_to_dict(task), status=status_code)
    response["ETag"] = f'"{task.version}"'
    return response


@cache
def _body_fields(serializer_class) -> frozenset[str]:
    """The names a request body may hold (read once per class: building one is costly)."""
    return frozenset(serializer_class().fields)


def _validated_body(request: Request, serializer_class) -> dict:
    return validated_body(request.data, serializer_class())


def validated_body(data, serializer: Serializer) -> dict:
    """A request body checked by ``serializer``, an instance without data: the bulk endpoint
    checks all its creates with one (building one costs more than checking a body)."""
    if not isinstance(data, dict):
        raise TaskValidationError(
            "The body must be a JSON object.", field=None, code="invalid_body"
        )
    allowed = _body_fields(type(serializer))
    # Strict: a read-only field (id, created_at, ...) or a misspelt one is an error, not ignored.
    reject_unknown(data, allowed, kind="field")
    validated = serializer.run_validation(data)
    return {k: v for k, v in validated.items() if k in allowed}


def task_create_arguments(data: dict) -> dict:
    """The ``task_create`` arguments of a validated create body, without ``completed``."""
    return {
        "title": data["title"],
        "description": data.get("description"),
        "priority": data.get("priority", "medium"),
        "tags": data.get("tags"),
        "due_date": data.get("due_date"),
        "reminder_time": data.get("reminder_time"),
        "recurrence_pattern": data.get("recurrence_pattern"),
        "timezone_name": data.get("timezone"),
        "repeat_from": data.get("repeat_from"),
    }


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
        # The page and the sequence it is consistent with: /api/changes/?since=<sequence>
        # then gives every later change once.
        page = selectors.task_list_for_user(
            user_id=request.user.id, filters=filters, limit=limit, offset=offset
        )
        sequence = page.sequence
        body = {
            "count": page.total,
            "limit": page.limit,
            "offset": page.offset,
            "results": page.fragments(),
            "sequence": sequence,
        }
        if page.corrected:
            body["corrected"] = page.corrected
        response = Response(body)
        response["X-Sequence"] = str(sequence)
        return response

    @extend_schema(
        operation_id="tasks_create",
        request=TaskWriteSerializer,
        responses={201: TaskSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        data = _validated_body(request, TaskWriteSerializer)
        completed = data.get("completed", False)
        task = services.task_create(user_id=request.user.id, **task_create_arguments(data))
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
        # The task as PostgreSQL wrote it (``RepresentationJson``), into the body as it is.
        text, version = selectors.task_representation_for_user(
            user_id=request.user.id, task_id=task_id
        )
        response = Response(orjson.Fragment(text))
        response["ETag"] = f'"{version}"'
        return response

    def _update(self, request: Request, task_id: int, *, partial: bool) -> Response:
        data = _validated_body(request, TaskPatchSerializer if partial else TaskReplaceSerializer)
        expected = _expected_version(request, data.pop("version", None))
        apply_to = data.pop("apply_to", "instance")
        if not partial:
            # PUT replaces every editable field; what is left out goes back to its default,
            # except a series' rule and repeat mode: a client that does not know them must not
            # end a series by leaving them out (only null or "none" does).
            defaults = {
                "description": "",
                "priority": "medium",
                "tags": [],
                "due_date": None,
                "reminder_time": None,
                "completed": False,
            }
            data = {**defaults, **data}
        task, _ = services.task_update(
            user_id=request.user.id,
            task_id=task_id,
            changes=data,
            expected_version=expected,
            apply_to=apply_to,
        )
        return _task_response(task)

    @extend_schema(
        operation_id="tasks_update",
        request=TaskReplaceSerializer,
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
            OpenApiParameter(
                "permanent",
                bool,
                required=False,
                description="Delete at once instead of moving the task to the trash (also "
                "deletes a task that is in the trash).",
            ),
        ],
        responses={204: None, **ERROR_RESPONSES},
        description="Moves the task to the trash for 30 days (`GET /api/tasks/trash/`, "
        "`POST /api/tasks/<id>/restore/`), or deletes it at once with `permanent=true`.",
    )
    def delete(self, request: Request, task_id: int) -> Response:
        reject_unknown(request.query_params, {"stop_series", "permanent"}, kind="parameter")
        services.task_delete(
            user_id=request.user.id,
            task_id=task_id,
            stop_series=_query_flag(request, "stop_series"),
            expected_version=_expected_version(request, None),
            permanent=_query_flag(request, "permanent"),
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
