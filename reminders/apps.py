from django.apps import AppConfig
from django.conf import settings


class RemindersConfig(AppConfig):
    name = "reminders"
    verbose_name = "Reminders"

    def ready(self) -> None:
        from reminders import (  # noqa: F401  (registers)
            consumers,
            event_types,
            metrics,
            receivers,
        )
        from tasks.signals import task_changed

        event_types.register()
        task_changed.connect(receivers.on_task_changed, dispatch_uid="reminders.follow_task")
        # Embedded: the polling scheduler. Dapr: the web process re-syncs reminders whose job
        # is not yet scheduled (the Jobs API calls back the app that scheduled a job).
        dapr_web = settings.EVENTS_BROKER == "dapr" and settings.REMINDER_JOBS_OWNER
        if settings.RUN_WORKERS_IN_PROCESS or dapr_web:
            from reminders.scheduler import in_process_scheduler
            from todo_project import lifespan

            lifespan.register("reminder-scheduler", in_process_scheduler)
