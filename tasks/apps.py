from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks"

    def ready(self):
        from django.db.backends.signals import connection_created

        from events.services import retention_swept
        from tasks import (
            event_types,
            metrics,  # noqa: F401  (every process exports every metric)
        )
        from tasks.consumers import register_audit_consumer
        from tasks.mcp.live import register_listen_consumer
        from tasks.search import use_correction_similarity

        event_types.register()
        register_audit_consumer()
        register_listen_consumer()
        retention_swept.connect(_purge_trash, dispatch_uid="tasks.purge_trash")
        connection_created.connect(use_correction_similarity, dispatch_uid="tasks.similarity")


def _purge_trash(sender, **kwargs) -> None:
    """The retention sweep's part for tasks: the trash older than ``TRASH_RETENTION``."""
    from tasks.services import task_trash_purge

    task_trash_purge()
