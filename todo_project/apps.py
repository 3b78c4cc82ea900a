from django.apps import AppConfig


class TodoProjectConfig(AppConfig):
    name = "todo_project"
    verbose_name = "Project"
