from django.apps import AppConfig


class RecurrenceConfig(AppConfig):
    name = "recurrence"
    verbose_name = "Recurrence"

    def ready(self) -> None:
        from recurrence import (
            consumers,  # noqa: F401  (registers the recurrence consumer)
            metrics,  # noqa: F401  (every process exports every metric)
        )
