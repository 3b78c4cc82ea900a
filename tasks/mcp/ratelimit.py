"""The REST rate limits, applied to MCP: same budgets, same cache, same keys.

A user's REST and MCP calls draw on one budget (``tasks/api/throttles.py``): ``task_write`` for
the four write tools, ``task_list`` for ``list_tasks``, ``task_read`` for every other method
(``initialize``, ``tools/list``, ``ping``, notifications, ...). Requests without a usable token
(the 401 challenge, the protected-resource metadata) draw on the client address's
``anonymous`` budget.
"""

from __future__ import annotations

from core.auth import TokenUser
from tasks.api import throttles

TOOL_CALL = "tools/call"
# A JSON-RPC "server error" (the -32000..-32099 range is the implementation's to define).
JSONRPC_RATE_LIMITED = -32000


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited, retry in {retry_after} s")
        self.retry_after = retry_after


def consume(budget: str, user: TokenUser, cost: int = 1) -> None:
    """Count ``cost`` calls against ``budget`` (a bulk tool counts each item, as REST's bulk
    counts each operation); raise ``RateLimited`` when it is spent.

    Runs in a sync thread: the cache may be Redis."""
    wait = throttles.Budget(budget, user.id).spend(cost)
    if wait is not None:
        raise RateLimited(wait)


async def consume_async(budget: str, ident: str) -> None:
    """``consume`` on the event loop, for a user id or (``anonymous``) a client address."""
    wait = await throttles.spend_async(budget, ident)
    if wait is not None:
        raise RateLimited(wait)


def is_tool_call(message: object) -> bool:
    """Tool calls are counted by the tool itself, against the budget of what it does."""
    return isinstance(message, dict) and message.get("method") == TOOL_CALL


def rate_limited_body(message: object, retry_after: int) -> dict:
    """The JSON-RPC error that answers a limited request (HTTP 429); the SDK's client hands it to
    the caller as an ``MCPError`` whose ``data`` holds ``retry_after``."""
    request_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": JSONRPC_RATE_LIMITED,
            "message": f"rate limited, retry in {retry_after} s",
            "data": {"code": "rate_limited", "retry_after": retry_after},
        },
    }
