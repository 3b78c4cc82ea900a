"""The lifespan enters its parts in order, leaves them in reverse, and reports a failed start."""

from __future__ import annotations

from contextlib import asynccontextmanager

from todo_project.lifespan import Lifespan


def _recording(log: list[str], name: str, *, fail: bool = False):
    @asynccontextmanager
    async def part():
        if fail:
            raise RuntimeError(f"{name} cannot start")
        log.append(f"start {name}")
        try:
            yield
        finally:
            log.append(f"stop {name}")

    return name, part


async def _run(lifespan: Lifespan, messages: list[str]) -> list[dict]:
    incoming = [{"type": f"lifespan.{message}"} for message in messages]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    await lifespan({"type": "lifespan"}, receive, send)
    return sent


async def test_parts_start_in_order_and_stop_in_reverse():
    log: list[str] = []
    lifespan = Lifespan(lambda: [_recording(log, "a"), _recording(log, "b")])

    sent = await _run(lifespan, ["startup", "shutdown"])

    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_a_part_that_cannot_start_fails_the_start_and_stops_those_started():
    log: list[str] = []
    lifespan = Lifespan(lambda: [_recording(log, "a"), _recording(log, "b", fail=True)])

    sent = await _run(lifespan, ["startup"])

    assert sent == [{"type": "lifespan.startup.failed", "message": "b cannot start"}]
    assert log == ["start a", "stop a"]
