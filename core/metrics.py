"""Prometheus helpers every process shares: the latency buckets, the HTTP request histogram
and the text exposition. Each app defines its own metrics in its ``metrics`` module."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUEST_DURATION = Histogram(
    "todo_http_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)


def render(*more: CollectorRegistry) -> tuple[bytes, str]:
    """The process's metrics, followed by those of ``more`` registries (metrics only one kind
    of process exports)."""
    return b"".join(generate_latest(registry) for registry in (REGISTRY, *more)), (
        CONTENT_TYPE_LATEST
    )
