"""The task domain's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core.metrics import LATENCY_BUCKETS

TASK_OPERATIONS = Counter("todo_task_operations_total", "Task changes by operation.", ["operation"])
TASK_QUERY_DURATION = Histogram(
    "todo_task_query_duration_seconds",
    "Task list query latency by kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
