"""The ``Host`` of an ASGI request, checked against ``ALLOWED_HOSTS`` as Django checks it.

Django does this for its own views (``HttpRequest.get_host``); the endpoints mounted beside it
(``/mcp``, the protected-resource metadata, WebSockets) get the same rule here, so a forged
``Host`` is refused everywhere and never echoed into a URL.

The internal endpoints are the exception (``is_internal_path``): kubelet probes, the Dapr sidecar
and Prometheus address a pod by its IP (``Host: 10.244.1.7:8000``, ``127.0.0.1:8000``), which an
``ALLOWED_HOSTS`` holding the public name refuses. What they answer never depends on the host,
so they are served whatever it says (``core.middleware.InternalHostMiddleware``).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from core.errors import error_body

# What Django allows when DEBUG is on and ALLOWED_HOSTS is empty.
_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]

# Probes and metrics, exactly; Dapr's callbacks (jobs, and the subscription and configuration
# endpoints under /dapr/), by prefix. Each authenticates its caller itself where it must.
INTERNAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
INTERNAL_PREFIXES = ("/job/", "/dapr/")
# The host an internal request counts as addressed to: a constant, so the one it carried is
# never used.
INTERNAL_HOST = "localhost"


def is_internal_path(path: str) -> bool:
    """Whether ``path`` is an endpoint that pods, sidecars and scrapers call by address."""
    return path in INTERNAL_PATHS or path.startswith(INTERNAL_PREFIXES)


def header(scope, name: bytes) -> str | None:
    """A request header of an ASGI scope (``name`` in lower case), or ``None``."""
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def raw_host(scope) -> str:
    """``HttpRequest._get_raw_host`` for an ASGI scope: not yet validated."""
    host = header(scope, b"x-forwarded-host") if settings.USE_X_FORWARDED_HOST else None
    if host is None:
        host = header(scope, b"host")
    if host is None:
        name, port = scope.get("server") or ("unknown", None)
        secure = scope.get("scheme") in ("https", "wss")
        host = name if port in (None, 443 if secure else 80) else f"{name}:{port}"
    return host


def allowed_host(scope) -> str | None:
    """The request's host when ``ALLOWED_HOSTS`` allows it, else ``None``."""
    host = raw_host(scope)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = _DEBUG_HOSTS
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, allowed):
        return host
    return None


async def send_disallowed_host(send) -> None:
    """Django's answer to a ``Host`` outside ``ALLOWED_HOSTS`` (a 400), as JSON, for an ASGI
    HTTP request; the host is not repeated back."""
    body = json.dumps(
        error_body(
            "disallowed_host", "This server does not answer for that Host; see ALLOWED_HOSTS."
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
