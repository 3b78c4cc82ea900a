"""Errors the task services raise. Every surface (REST, MCP, admin, consumers) maps them the
same way: validation -> 400, not found -> 404, stale version or clash -> 409."""

from __future__ import annotations


class TaskError(Exception):
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


class TaskValidationError(TaskError):
    status = 400
    code = "invalid"


class TaskNotFound(TaskError):
    status = 404
    code = "not_found"

    def __init__(self, task_id: object = None):
        super().__init__("Task not found.", field=None)
        self.task_id = task_id


class TaskConflict(TaskError):
    status = 409
    code = "conflict"


class VersionConflict(TaskConflict):
    code = "version_conflict"

    def __init__(self, *, expected: int, actual: int):
        super().__init__(
            f"The task was changed by someone else (version {actual}, you sent {expected}). "
            "Reload it and try again.",
            field="version",
        )
        self.expected = expected
        self.actual = actual
