"""Errors the task services raise. Every surface (REST, MCP, admin, consumers) maps them the
same way: validation -> 400, not found -> 404, stale version or clash -> 409."""

from __future__ import annotations

from core.errors import DomainError


class TaskError(DomainError):
    """Any error of the task services."""


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
