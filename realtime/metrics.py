"""Metrics of the WebSocket surface."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from core.metrics import LATENCY_BUCKETS

WEBSOCKET_CONNECTIONS = Gauge("todo_websocket_connections", "Open WebSocket connections.")
WEBSOCKET_FANOUT = Histogram(
    "todo_websocket_fanout_seconds", "Commit to frame sent.", buckets=LATENCY_BUCKETS
)
