"""Operator endpoints: liveness, readiness, metrics. No authentication, no database for liveness."""

from __future__ import annotations

from django.db import connection
from django.http import HttpResponse, JsonResponse

from todo_project import metrics


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"
        return JsonResponse({"status": "unavailable", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def metrics_view(request):
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
