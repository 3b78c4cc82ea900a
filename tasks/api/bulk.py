"""``POST /api/tasks/bulk/``: up to 100 task operations in one request.

Each operation is handed to the view of its single endpoint (``create`` to ``POST /api/tasks/``,
``update`` to ``PATCH /api/tasks/<id>/``, ``complete``, ``reopen`` and ``skip`` to their
``POST``, ``delete`` to ``DELETE``), so it is validated, done and answered exactly as it would be
alone, with the same events. ``version`` travels as ``If-Match``; a ``delete``'s ``data`` holds
its query parameters (``stop_series``, ``permanent``).

Consecutive creates are the exception that makes a batch cheap: each body is checked as
``POST /api/tasks/`` checks it, and the valid ones are written by one ``task_create_many``
(one lock, one insert, one statement for their events), answered as that endpoint answers. A
create that is refused is sent to the endpoint alone, in its place, so its error is the
endpoint's own; a create that also completes its task goes alone too.

The batch runs in one transaction. ``"atomic": false`` (the default): each operation stands or
falls alone (its service runs in a savepoint), answered with its own status; the request
answers 200. ``"atomic": true``:
the first operation that fails stops the batch and undoes the others; the request answers that
operation's status with an ``error`` that names it, and each other operation says 424 (undone,
or not tried). Rate limits count every operation against the write budget.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from urllib.parse import urlencode

import orjson
from django.core.handlers.wsgi import WSGIRequest
from django.db import transaction
from django.urls import Resolver404, resolve
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.auth import share_verified
from core.errors import DomainError, error_body
from tasks import services
from tasks.api.base import ThrottledView
from tasks.api.params import reject_unknown
from tasks.api.serializers import StrictBooleanField, StrictIntegerField, TaskWriteSerializer
from tasks.api.throttles import WRITE, Budget
from tasks.api.views import task_create_arguments, validated_body
from tasks.representation import task_to_dict

MAX_OPERATIONS = 100
# op -> (method, path below /api/ of its single endpoint)
ROUTES = {
    "create": ("POST", "tasks/"),
    "update": ("PATCH", "tasks/{task_id}/"),
    "complete": ("POST", "tasks/{task_id}/complete/"),
    "reopen": ("POST", "tasks/{task_id}/reopen/"),
    "delete": ("DELETE", "tasks/{task_id}/"),
    "skip": ("POST", "tasks/{task_id}/skip/"),
}
OPERATION_FIELDS = frozenset({"op", "task_id", "data", "version"})
BATCH_FIELDS = frozenset({"operations", "atomic"})
# The request headers an operation keeps from its batch; the rest describe the batch itself.
_DROPPED_HEADERS = ("HTTP_IF_MATCH", "HTTP_IDEMPOTENCY_KEY", "CONTENT_LENGTH", "CONTENT_TYPE")
NOT_APPLIED = status.HTTP_424_FAILED_DEPENDENCY


class OperationSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=sorted(ROUTES))
    task_id = StrictIntegerField(min_value=1, max_value=2**63 - 1, required=False)
    data = serializers.DictField(
        required=False,
        help_text="The body of the single request (create, update), or a delete's query "
        "parameters.",
    )
    version = StrictIntegerField(
        min_value=1, required=False, help_text="Expected version, sent as `If-Match`."
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            reject_unknown(data, OPERATION_FIELDS, kind="field")
        return super().to_internal_value(data)

    def validate(self, attrs):
        op = attrs["op"]
        if op == "create" and "task_id" in attrs:
            raise serializers.ValidationError({"task_id": "create takes no task_id."})
        if op != "create" and "task_id" not in attrs:
            raise serializers.ValidationError({"task_id": f"{op} needs a task_id."})
        if op in {"complete", "reopen", "skip"} and attrs.get("data"):
            raise serializers.ValidationError({"data": f"{op} takes no data."})
        if op == "create" and "data" not in attrs:
            raise serializers.ValidationError({"data": "create needs the task's data."})
        return attrs


class BulkSerializer(serializers.Serializer):
    operations = serializers.ListField(
        child=OperationSerializer(), min_length=1, max_length=MAX_OPERATIONS
    )
    atomic = StrictBooleanField(required=False, default=False)


class ResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    op = serializers.CharField()
    status = serializers.IntegerField()
    body = serializers.JSONField(allow_null=True, help_text="What the single endpoint answers.")


class BulkResultSerializer(serializers.Serializer):
    atomic = serializers.BooleanField()
    results = ResultSerializer(many=True)


class _Failed(Exception):
    """Undoes an atomic batch."""


def _query_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _operation_request(batch: Request, operation: dict) -> tuple[WSGIRequest, str]:
    """The request the operation's single endpoint would get from this client."""
    method, route = ROUTES[operation["op"]]
    path = "/api/" + route.format(task_id=operation.get("task_id"))
    data = operation.get("data") or {}
    body = b"" if method == "DELETE" else orjson.dumps(data)
    # Encoded as a client would: a name or value may hold any text ("&", "=", "é", "会").
    query = urlencode([(name, _query_value(value)) for name, value in data.items()])
    environ = {k: v for k, v in batch._request.META.items() if k not in _DROPPED_HEADERS}
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": query if method == "DELETE" else "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
    )
    if "version" in operation:
        environ["HTTP_IF_MATCH"] = f'"{operation["version"]}"'
    inner = WSGIRequest(environ)
    share_verified(batch._request, inner)  # the batch's token, verified once for all
    return inner, path


def _dispatch(batch: Request, operation: dict) -> tuple[int, object]:
    """Run one operation through its endpoint's view: (status, body)."""
    inner, path = _operation_request(batch, operation)
    try:
        match = resolve(path)
    except Resolver404:
        return status.HTTP_404_NOT_FOUND, error_body("not_found", "Not found.")
    view = match.func.view_class(**match.func.view_initkwargs)  # type: ignore[attr-defined]
    view.throttle_classes = ()  # the batch paid for every operation up front
    response = view.dispatch(inner, *match.args, **match.kwargs)
    return response.status_code, response.data


class BulkView(ThrottledView):
    @extend_schema(
        operation_id="tasks_bulk",
        request=BulkSerializer,
        responses={
            200: BulkResultSerializer,
            400: OpenApiResponse(
                description="Malformed batch (`operations[i].op` ...), more than "
                f"{MAX_OPERATIONS} operations, or an atomic batch whose operation failed "
                "validation (`error` names it, `results` has each answer)."
            ),
            401: OpenApiResponse(description="Missing, invalid or expired token."),
            404: OpenApiResponse(description="Atomic batch: an operation's task is not found."),
            409: OpenApiResponse(description="Atomic batch: an operation met a conflict."),
            429: OpenApiResponse(description="Rate limited (every operation counts)."),
        },
        description="Up to 100 task operations, answered in order, each as its single "
        "endpoint would answer it; `atomic: true` makes it all or nothing.",
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError("The body must be a JSON object.")
        reject_unknown(request.data, BATCH_FIELDS, kind="field")
        batch = BulkSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        operations = batch.validated_data["operations"]
        self._charge(request, len(operations))
        if batch.validated_data["atomic"]:
            return self._all_or_nothing(request, operations)
        return self._each(request, operations)

    def _charge(self, request: Request, count: int) -> None:
        """The throttle counted this request once; count its other operations too."""
        if count > 1:
            wait = Budget(WRITE, str(request.user.pk)).spend(count - 1)
            if wait is not None:
                raise exceptions.Throttled(wait=wait)

    def _each(self, request: Request, operations: list[dict]) -> Response:
        # One commit for the batch; each operation's service is its own savepoint already, so
        # one that fails leaves the others as its single endpoint would.
        with transaction.atomic():
            results = list(_answers(request, operations))
        return Response({"atomic": False, "results": results})

    def _all_or_nothing(self, request: Request, operations: list[dict]) -> Response:
        results: list[dict] = []
        try:
            with transaction.atomic():
                for result in _answers(request, operations):
                    results.append(result)
                    if result["status"] >= 400:
                        raise _Failed
        except _Failed:
            return _atomic_failure(operations, results)
        return Response({"atomic": True, "results": results})


def _result(index: int, operation: dict, code: int, body: object) -> dict:
    return {"index": index, "op": operation["op"], "status": code, "body": body}


def _answers(batch: Request, operations: list[dict]) -> Iterator[dict]:
    """Each operation's result, in order, done when asked for (an atomic batch stops asking at
    the first failure). Consecutive creates are done together (``_creates``)."""
    index = 0
    while index < len(operations):
        end = index
        while end < len(operations) and _joins_creates(operations[end]):
            end += 1
        if end > index:
            yield from _creates(batch, operations, range(index, end))
            index = end
        else:
            yield _single(batch, operations, index)
            index += 1


def _joins_creates(operation: dict) -> bool:
    # A create that also completes its task records two events: it goes alone, in its place.
    return operation["op"] == "create" and "completed" not in operation["data"]


def _single(batch: Request, operations: list[dict], index: int) -> dict:
    return _result(index, operations[index], *_dispatch(batch, operations[index]))


def _creates(batch: Request, operations: list[dict], indexes: range) -> Iterator[dict]:
    """A run of creates: each body checked as ``POST /api/tasks/`` checks it, the valid ones
    written by one ``task_create_many``. An operation refused is sent to the endpoint alone,
    after the valid ones before it, so it gets that endpoint's own error and changes nothing."""
    valid: list[tuple[int, dict]] = []
    serializer = TaskWriteSerializer()
    for index in indexes:
        try:
            data = validated_body(operations[index]["data"], serializer)
        except (exceptions.ValidationError, DomainError):
            yield from _created(batch, operations, valid)
            valid = []
            yield _single(batch, operations, index)
        else:
            valid.append((index, task_create_arguments(data)))
    yield from _created(batch, operations, valid)


def _created(
    batch: Request, operations: list[dict], valid: list[tuple[int, dict]]
) -> Iterator[dict]:
    while valid:
        try:
            tasks = services.task_create_many(
                user_id=batch.user.id, items=[arguments for _, arguments in valid]
            )
        except services.InvalidItem as refused:
            # Nothing was written: the ones before it together, it alone, then the rest.
            yield from _created(batch, operations, valid[: refused.index])
            yield _single(batch, operations, valid[refused.index][0])
            valid = valid[refused.index + 1 :]
            continue
        except DomainError:
            # Refused as it was written (a conflict): each one alone says which.
            for index, _ in valid:
                yield _single(batch, operations, index)
            return
        for (index, _), task in zip(valid, tasks, strict=True):
            yield _result(index, operations[index], status.HTTP_201_CREATED, task_to_dict(task))
        return


def _atomic_failure(operations: list[dict], results: list[dict]) -> Response:
    failed = results[-1]
    undone = error_body("not_applied", f"Undone: operation {failed['index']} failed.")
    not_tried = error_body("not_applied", f"Not tried: operation {failed['index']} failed.")
    answered = [{**result, "status": NOT_APPLIED, "body": undone} for result in results[:-1]] + [
        failed
    ]
    answered += [
        _result(index, operations[index], NOT_APPLIED, not_tried)
        for index in range(len(results), len(operations))
    ]
    error = failed["body"].get("error", {}) if isinstance(failed["body"], dict) else {}
    message = f"Operation {failed['index']} failed; nothing was applied."
    body = error_body(
        "operation_failed",
        message,
        [
            {
                "field": f"operations[{failed['index']}]",
                "code": error.get("code", "error"),
                "message": error.get("message", message),
            }
        ],
    )
    return Response({**body, "atomic": True, "results": answered}, status=failed["status"])
