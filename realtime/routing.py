"""The WebSocket routes, which ``todo_project/asgi.py`` serves: ``/ws/tasks/``, and 4404 for
any other path."""

from __future__ import annotations

from django.urls import path, re_path

from realtime.consumers import NotFoundConsumer, TaskUpdatesConsumer

websocket_urlpatterns = [
    path("ws/tasks/", TaskUpdatesConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
