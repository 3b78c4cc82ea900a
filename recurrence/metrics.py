"""Metrics of recurring series."""

from __future__ import annotations

from prometheus_client import Histogram

from core.metrics import LATENCY_BUCKETS

RECURRENCE_GENERATION = Histogram(
    "todo_recurrence_generation_seconds",
    "Completion of a recurring task to its next instance.",
    buckets=LATENCY_BUCKETS,
)
