from __future__ import annotations

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from realtime import (
            delivery,
            fanout,
            metrics,  # noqa: F401  (every process exports every metric)
            redaction,
        )
        from realtime.routing import websocket_application
        from todo_project import lifespan
        from todo_project.routing import set_websocket_app

        redaction.install()
        set_websocket_app(websocket_application())
        lifespan.register("realtime", delivery.lifespan)
        fanout.register()
