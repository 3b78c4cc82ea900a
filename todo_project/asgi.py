"""The one ASGI application, listed: HTTP (Django, ``/mcp``), WebSocket routes, the lifespan.

Django's HTTP views are synchronous (DRF), so they are served as WSGI on a fixed pool of
threads inside the ASGI server: one hop per request and a kept database connection per thread,
instead of Django's ASGI handler, which starts a thread per request and hops between the event
loop and threads for every middleware (measured: 7 ms against 1 ms for an empty request).
Asynchronous endpoints (``/mcp``, WebSockets) are served beside it.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

import django

from core.embedded_postgres import ensure_running

ensure_running()
django.setup()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from core.memory import freeze_startup_heap  # noqa: E402
from events.runners import in_process_workers  # noqa: E402
from realtime import delivery  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from reminders.scheduler import in_process_scheduler  # noqa: E402
from tasks.mcp import asgi as mcp  # noqa: E402
from todo_project.lifespan import Lifespan, Part  # noqa: E402
from todo_project.routing import HttpMounts  # noqa: E402

django_app = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS)

http_app = HttpMounts(
    {
        mcp.RESOURCE_PATH: mcp.mcp_app,
        mcp.METADATA_PATH: mcp.protected_resource_metadata,
    },
    default=django_app,
)

# The socket's handshake (token, Host, Origin, limits) is checked by the consumer itself.
websocket_app = URLRouter(websocket_urlpatterns)


def lifespan_parts() -> list[Part]:
    """What the server runs beside the app, started in this order and stopped in reverse."""
    parts: list[Part] = [("mcp", mcp.lifespan)]  # the MCP SDK's session manager
    if settings.RUN_WORKERS_IN_PROCESS:
        parts.append(("events", in_process_workers))  # the relay and every consumer
    # Embedded: the polling scheduler. Dapr: the web process re-syncs reminders whose job is
    # not yet scheduled (the Jobs API calls back the app that scheduled a job).
    if settings.RUN_WORKERS_IN_PROCESS or (
        settings.EVENTS_BROKER == "dapr" and settings.REMINDER_JOBS_OWNER
    ):
        parts.append(("reminder-scheduler", in_process_scheduler))
    parts.append(("realtime", delivery.lifespan))  # the loop that fan-out sends frames on
    return parts


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": websocket_app,
        "lifespan": Lifespan(lifespan_parts),
    }
)

freeze_startup_heap()
