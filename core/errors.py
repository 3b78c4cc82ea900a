"""One JSON error shape for the whole API:

``{"error": {"code": "...", "message": "...", "fields": [{"field": "...", "code": "...", "message": "..."}]}}``
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger(__name__)


def _flatten(detail, prefix: str = "") -> list[dict]:
    items: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                name = f"{prefix}[{key}]"
            else:
                name = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                name = prefix or None
            items.extend(_flatten(value, name))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                items.extend(_flatten(value, f"{prefix}[{index}]" if prefix else str(index)))
            else:
                items.extend(_flatten(value, prefix))
    else:
        code = getattr(detail, "code", "invalid")
        items.append({"field": prefix or None, "code": code, "message": str(detail)})
    return items


class DomainError(Exception):
    """An error a service raises on purpose; every surface answers it with ``status`` and the
    stable ``code`` (and the ``field`` it concerns, if any)."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        detail = {"code": self.code, "message": self.message}
        if self.field:
            detail["field"] = self.field
        return detail


def error_body(code: str, message: str, fields: list[dict] | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        fields = [exc.as_dict()] if exc.field else None
        return Response(error_body(exc.code, exc.message, fields), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is restarting, failing over or unreachable: a 503 tells the client to
        # try again (Django would answer an HTML 500). A write cut off during its commit may
        # have happened; the task's version says which.
        set_rollback()
        logger.warning("database unavailable: %s", exc)
        response = Response(
            error_body("unavailable", "The database is unavailable; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, RequestDataTooBig):
        # Django would answer its HTML 400 page; say what happened, in our shape.
        return Response(
            error_body(
                "too_large",
                f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = fields[0] if fields else {"message": "Invalid input."}
        response.data = error_body("invalid", first["message"], fields)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = error_body(code, str(exc.detail))
    return response
