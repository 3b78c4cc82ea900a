"""Every request is timed under its route pattern, never under its raw path."""

from prometheus_client import REGISTRY


def _count(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("todo_http_request_duration_seconds_count", labels) or 0.0


def test_a_request_is_timed_once_under_its_route(client):
    before = _count("healthz", "200"), _count("unmatched", "404")

    client.get("/healthz")
    client.get("/no-such-page-0123456789")

    assert (_count("healthz", "200"), _count("unmatched", "404")) == (before[0] + 1, before[1] + 1)
    assert _count("no-such-page-0123456789", "404") == 0
