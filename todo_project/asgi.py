"""The one ASGI application: HTTP (Django: REST, admin, pages), ``/mcp``, WebSocket, lifespan."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from todo_project.routing import build_application  # noqa: E402

application = build_application(django_app)
