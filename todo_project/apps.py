from django.apps import AppConfig


class TodoProjectConfig(AppConfig):
    name = "todo_project"
    verbose_name = "Project"

    def ready(self) -> None:
        from todo_project import openapi  # noqa: F401  (registers the schema's bearer scheme)
