from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks"

    def ready(self):
        from tasks import (
            event_types,
            metrics,  # noqa: F401  (every process exports every metric)
        )
        from tasks.consumers import register_audit_consumer

        event_types.register()
        register_audit_consumer()
