"""HTTP endpoints served beside Django, by path prefix, behind Django's ``Host`` rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from core.hosts import allowed_host, send_disallowed_host

ASGIApp = Callable[..., Awaitable[None]]


class HttpMounts:
    """Serve a path equal to a prefix, or below ``prefix/``, with the app mounted there, and
    every other path with ``default`` (Django)."""

    def __init__(self, mounts: Mapping[str, ASGIApp], *, default: ASGIApp):
        self.mounts = [(prefix.rstrip("/"), app) for prefix, app in mounts.items()]
        self.default = default

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                # Django checks the host of what it serves; these mounts are checked here.
                if allowed_host(scope) is None:
                    await send_disallowed_host(send)
                else:
                    await app(scope, receive, send)
                return
        await self.default(scope, receive, send)
