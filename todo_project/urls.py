from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from realtime.views import board
from reminders.views import job_trigger
from todo_project import signin, views
from todo_project.admin_overview import overview_view

urlpatterns = [
    path("", board, name="board"),
    path("api/", include("tasks.api.urls")),
    path("", include("tasks.mcp.urls")),  # /mcp under runserver (WSGI); ASGI mounts it first
    path("api/", include("reminders.api.urls")),
    # Dapr Jobs API callback; the view answers 404 unless the Dapr broker is configured
    path("job/<str:name>", job_trigger, name="dapr-job-trigger"),
    path("api/auth/token/", signin.TokenView.as_view(), name="auth-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/overview/", overview_view, name="admin-overview"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]
