"""Which part of the project answers which ASGI scope.

Apps add their ASGI endpoints in their ``AppConfig.ready`` through ``mount_http`` and
``set_websocket_app``; the router here stays the same when they do.
"""

from __future__ import annotations

from core.hosts import allowed_host, send_disallowed_host
from todo_project.lifespan import lifespan_app

_http_mounts: list[tuple[str, object]] = []
_websocket_app: list[object] = []


def mount_http(prefix: str, app) -> None:
    """Serve paths equal to ``prefix`` or below ``prefix/`` with ``app`` instead of Django."""
    _http_mounts.append((prefix.rstrip("/"), app))


def set_websocket_app(app) -> None:
    _websocket_app[:] = [app]


def build_application(django_app):
    async def application(scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope.get("path", "")
            for prefix, app in _http_mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    # Django checks the host of what it serves; these mounts are checked here.
                    if allowed_host(scope) is None:
                        await send_disallowed_host(send)
                    else:
                        await app(scope, receive, send)
                    return
            await django_app(scope, receive, send)
        elif kind == "websocket":
            if not _websocket_app:
                await send({"type": "websocket.close", "code": 4404})
                return
            await _websocket_app[0](scope, receive, send)
        elif kind == "lifespan":
            await lifespan_app(scope, receive, send)
        else:
            raise ValueError(f"Unsupported ASGI scope type {kind!r}")

    return application
