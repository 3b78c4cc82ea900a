"""Operator endpoints: liveness, readiness, metrics. No authentication, no database for liveness."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpResponse, JsonResponse

from core import metrics
from events.metrics import EVENT_HEALTH_REGISTRY

logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; hosts and paths stay in the log
        logger.warning("readiness check: the database is unavailable: %s", exc)
        return JsonResponse({"status": "unavailable", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def metrics_view(request):
    # The web process also says how the relay and consumers are doing, from the database, so
    # that a dead worker does not silence its own alerts.
    body, content_type = metrics.render(EVENT_HEALTH_REGISTRY)
    return HttpResponse(body, content_type=content_type)
