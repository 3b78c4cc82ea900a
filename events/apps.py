from django.apps import AppConfig
from django.conf import settings


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        from events import metrics  # noqa: F401  (every process exports every metric)
        from events.audit import register_audit_consumer
        from events.receivers import record_task_change
        from tasks.signals import task_changed

        task_changed.connect(record_task_change, dispatch_uid="events.record_task_change")
        register_audit_consumer()
        if getattr(settings, "RUN_WORKERS_IN_PROCESS", False):
            from events.runners import in_process_workers
            from todo_project import lifespan

            lifespan.register("events", in_process_workers)
