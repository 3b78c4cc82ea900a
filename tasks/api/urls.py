from django.urls import path

from tasks.api import history, views

urlpatterns = [
    path("tasks/", views.TaskListCreateView.as_view(), name="task-list"),
    path("tasks/<int:task_id>/", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<int:task_id>/complete/", views.TaskCompleteView.as_view(), name="task-complete"),
    path("tasks/<int:task_id>/reopen/", views.TaskReopenView.as_view(), name="task-reopen"),
    path("tasks/<int:task_id>/history/", history.TaskHistoryView.as_view(), name="task-history"),
]
