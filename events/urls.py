from django.urls import path

from events import api

urlpatterns = [
    path("tasks/<int:task_id>/history/", api.TaskHistoryView.as_view(), name="task-history"),
]
