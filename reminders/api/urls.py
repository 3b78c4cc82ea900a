from django.urls import path

from reminders.api import views

urlpatterns = [
    path("notifications/", views.NotificationListView.as_view(), name="notification-list"),
    path(
        "notifications/<int:notification_id>/read/",
        views.NotificationReadView.as_view(),
        name="notification-read",
    ),
    path(
        "notifications/<int:notification_id>/dismiss/",
        views.NotificationDismissView.as_view(),
        name="notification-dismiss",
    ),
]
