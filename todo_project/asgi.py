"""The one ASGI application: HTTP (Django: REST, admin, pages), ``/mcp``, WebSocket, lifespan.

Django's HTTP views are synchronous (DRF), so they are served as WSGI on a fixed pool of
threads inside the ASGI server: one hop per request and a kept database connection per thread,
instead of Django's ASGI handler, which starts a thread per request and hops between the event
loop and threads for every middleware (measured: 7 ms against 1 ms for an empty request).
Asynchronous endpoints (``/mcp``, WebSockets) are mounted beside it in ``todo_project.routing``.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

import django

django.setup()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from core.memory import freeze_startup_heap  # noqa: E402
from todo_project.routing import build_application  # noqa: E402

django_app = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS)

application = build_application(django_app)

freeze_startup_heap()
