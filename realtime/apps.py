from __future__ import annotations

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from realtime import (
            fanout,
            metrics,  # noqa: F401  (every process exports every metric)
            redaction,
        )

        redaction.install()
        fanout.register()
