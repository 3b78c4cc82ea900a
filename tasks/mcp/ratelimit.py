"""The REST rate limits, applied to MCP calls: same budgets, same cache, same keys.

The REST throttle classes do the counting, so a user's REST and MCP calls draw on one budget:
``task_write`` for the four write tools, ``task_list`` for ``list_tasks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tasks.api.throttles import TaskListThrottle, TaskWriteThrottle
from todo_project.auth import TokenUser

_THROTTLES = {
    "task_write": (TaskWriteThrottle, "POST"),
    "task_list": (TaskListThrottle, "GET"),
}


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited, retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Call:
    """What the throttles read from a request: who calls and with which method."""

    user: TokenUser
    method: str


def consume(budget: str, user: TokenUser) -> None:
    """Count one call against ``budget``; raise ``RateLimited`` when it is spent.

    Runs in a sync thread: the cache may be a database cache."""
    throttle_class, method = _THROTTLES[budget]
    throttle = throttle_class()
    if throttle.allow_request(_Call(user=user, method=method), None):
        return
    wait = throttle.wait()
    raise RateLimited(max(1, math.ceil(wait if wait is not None else 1)))
