from django.apps import AppConfig


class TodoProjectConfig(AppConfig):
    name = "todo_project"
    verbose_name = "Project"

    def ready(self) -> None:
        from core import db, openapi  # noqa: F401  (openapi: the bearer scheme)

        db.install()
