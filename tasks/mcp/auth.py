"""Bearer JWT on every MCP request, verified by the same code as REST.

A request without a usable token is answered 401 with the ``WWW-Authenticate`` challenge the
MCP authorization spec asks for (RFC 6750 + RFC 9728 ``resource_metadata``); the small
protected-resource metadata document it points at is served here too. The verified user
reaches the tools through a context variable, which the SDK's request tasks inherit.

Both answers without a token are limited per client address (the ``anonymous`` budget): past
it, 429 with ``Retry-After``. The ``Host`` they name in URLs was checked against
``ALLOWED_HOSTS`` before the request got here (``todo_project.routing``, or Django itself).
"""

from __future__ import annotations

import contextvars
import json

from django.conf import settings

from core.auth import AuthError, TokenUser, bearer_from_header, verify_token_async
from core.hosts import header, raw_host
from tasks.api.throttles import ANONYMOUS, client_address
from tasks.mcp.ratelimit import RateLimited, consume_async

RESOURCE_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"

_current_user: contextvars.ContextVar[TokenUser | None] = contextvars.ContextVar(
    "mcp_user", default=None
)
# The request's bearer token and User-Agent, for the actor its changes are recorded under.
_current_request: contextvars.ContextVar[tuple[str, str | None]] = contextvars.ContextVar(
    "mcp_request", default=("", None)
)


def current_token_and_agent() -> tuple[str, str | None]:
    return _current_request.get()


def current_user() -> TokenUser:
    user = _current_user.get()
    if user is None:
        # Only reachable if a tool runs outside an authenticated request.
        raise RuntimeError("No authenticated MCP user in this context.")
    return user


def _origin(scope) -> str:
    return f"{scope.get('scheme', 'http')}://{raw_host(scope)}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


async def send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()):
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _rate_limited(send, retry_after: int) -> None:
    await send_json(
        send,
        429,
        {
            "error": "rate_limited",
            "error_description": f"Too many requests without a usable token; retry in "
            f"{retry_after} s.",
            "retry_after": retry_after,
        },
        [(b"retry-after", str(retry_after).encode())],
    )


async def _spend_anonymous(scope, send) -> bool:
    """Count a request without a usable token against its address; answer 429 when spent."""
    try:
        await consume_async(ANONYMOUS, client_address(scope))
    except RateLimited as exc:
        await _rate_limited(send, exc.retry_after)
        return False
    return True


async def _challenge(scope, send, error: AuthError | None) -> None:
    """401 with ``WWW-Authenticate``. No token at all gets no error code (RFC 6750 §3.1)."""
    if not await _spend_anonymous(scope, send):
        return
    metadata = f"{_origin(scope)}{METADATA_PATH}{RESOURCE_PATH}"
    parts = ['realm="mcp"']
    if error is not None:
        parts += ['error="invalid_token"', f'error_description="{_quoted(error.message)}"']
    parts.append(f'resource_metadata="{_quoted(metadata)}"')
    body = {
        "error": "invalid_token" if error is not None else "unauthorized",
        "error_description": error.message
        if error is not None
        else "Send Authorization: Bearer <token>.",
    }
    if error is not None and error.code != "invalid_token":
        body["code"] = error.code
    await send_json(
        send, 401, body, [(b"www-authenticate", ("Bearer " + ", ".join(parts)).encode())]
    )


class BearerAuth:
    """ASGI wrapper: authenticate, then run ``app`` as the user."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = bearer_from_header(header(scope, b"authorization"))
        if token is None:
            await _challenge(scope, send, None)
            return
        try:
            user = await verify_token_async(token)
        except AuthError as exc:
            await _challenge(scope, send, exc)
            return
        agent = header(scope, b"user-agent")
        reset = _current_user.set(user)
        reset_request = _current_request.set((token, agent or None))
        try:
            await self.app(scope, receive, send)
        finally:
            _current_request.reset(reset_request)
            _current_user.reset(reset)


async def protected_resource_metadata(scope, receive, send) -> None:
    """RFC 9728 metadata: ``/.well-known/oauth-protected-resource/mcp`` describes ``/mcp``;
    the bare well-known path describes the whole origin (REST uses the same tokens)."""
    if scope["type"] != "http":
        return
    if not await _spend_anonymous(scope, send):
        return
    if scope.get("method") not in ("GET", "HEAD"):
        await send_json(send, 405, {"error": "method_not_allowed"}, [(b"allow", b"GET, HEAD")])
        return
    suffix = scope.get("path", "")[len(METADATA_PATH) :]
    if suffix not in ("", "/", RESOURCE_PATH):
        await send_json(send, 404, {"error": "not_found"})
        return
    origin = _origin(scope)
    document: dict = {
        "resource": origin + RESOURCE_PATH if suffix == RESOURCE_PATH else origin,
        "bearer_methods_supported": ["header"],
        "resource_name": "Task backend MCP server",
    }
    if settings.JWT_ISSUER:
        document["authorization_servers"] = [settings.JWT_ISSUER]
    await send_json(send, 200, document, [(b"access-control-allow-origin", b"*")])
