from django.urls import path

from tasks.api import bulk, changes, history, series, trash, undo, views

urlpatterns = [
    path("tasks/", views.TaskListCreateView.as_view(), name="task-list"),
    path("tasks/bulk/", bulk.BulkView.as_view(), name="task-bulk"),
    path("changes/", changes.ChangesView.as_view(), name="changes"),
    path("tasks/<int:task_id>/", views.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<int:task_id>/complete/", views.TaskCompleteView.as_view(), name="task-complete"),
    path("tasks/<int:task_id>/reopen/", views.TaskReopenView.as_view(), name="task-reopen"),
    path("tasks/<int:task_id>/history/", history.TaskHistoryView.as_view(), name="task-history"),
    path(
        "tasks/<int:task_id>/occurrences/",
        series.TaskOccurrencesView.as_view(),
        name="task-occurrences",
    ),
    path("tasks/<int:task_id>/skip/", series.TaskSkipView.as_view(), name="task-skip"),
    path("tasks/trash/", trash.TaskTrashView.as_view(), name="task-trash"),
    path("tasks/<int:task_id>/restore/", trash.TaskRestoreView.as_view(), name="task-restore"),
    path("tasks/<int:task_id>/undo/", undo.TaskUndoView.as_view(), name="task-undo"),
]
