"""Running a relay or a consumer as its own process (``relay_events``, ``run_consumer``).

The worker runs in a thread; the main thread waits for SIGTERM or SIGINT and then asks the worker
to stop, which lets the event in hand finish. A small HTTP server answers ``/healthz`` (the
process is up), ``/readyz`` (the worker's last attempt reached the database and the broker) and
``/metrics`` (Prometheus) on ``METRICS_PORT`` (0 turns it off).
"""

from __future__ import annotations

import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core import metrics
from core.memory import freeze_startup_heap

logger = logging.getLogger(__name__)


def _handler_for(worker):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz":
                self._reply(200, b'{"status": "ok"}', "application/json")
            elif self.path == "/readyz":
                ready = worker.healthy.is_set()
                body = b'{"status": "ok"}' if ready else b'{"status": "unavailable"}'
                self._reply(200 if ready else 503, body, "application/json")
            elif self.path == "/metrics":
                body, content_type = metrics.render()
                self._reply(200, body, content_type)
            else:
                self._reply(404, b"{}", "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    return Handler


def run_until_signalled(worker, *, name: str, metrics_port: int, listen: bool = True) -> None:
    """Run ``worker.run()`` until it ends or SIGTERM/SIGINT arrives; then stop it gracefully."""
    from events import wakeup

    freeze_startup_heap()
    server = None
    if metrics_port:
        server = ThreadingHTTPServer(("0.0.0.0", metrics_port), _handler_for(worker))  # noqa: S104
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
        logger.info("%s: /healthz, /readyz and /metrics on port %d", name, metrics_port)
    stopping = threading.Event()

    def on_signal(signum, frame):
        if not stopping.is_set():
            logger.info(
                "%s: %s received, finishing the event in hand", name, signal.Signals(signum).name
            )
            stopping.set()
            worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if listen:
        wakeup.acquire_listener()
    thread = threading.Thread(target=worker.run, name=name)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(timeout=0.2)
    finally:
        if listen:
            wakeup.release_listener()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.shutdown()
