from django.apps import AppConfig


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
        from tasks.mcp.registry import contribute_tools
        from tasks.signals import task_changed

        event_types.register()
        contribute_tools("reminders.mcp")
        task_changed.connect(receivers.on_task_changed, dispatch_uid="reminders.follow_task")
