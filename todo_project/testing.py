"""Helpers for the project's tests (importable from any test package)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rest_framework.test import APIClient

from todo_project.auth import issue_token


def client_for(user: str) -> APIClient:
    """A DRF test client that sends a valid bearer token for ``user``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    return client


def asgi_app_with_mcp_lifespan_only():
    """The project's ASGI app for a live test server: its lifespan starts only the MCP session
    manager (the in-process workers of the other apps stay out of the test)."""
    from tasks.mcp.asgi import lifespan as mcp_lifespan
    from todo_project.asgi import application

    async def app(scope, receive, send):
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        context = mcp_lifespan()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await context.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await context.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


@contextmanager
def jwks_endpoint(private_key, kid: str = "k1") -> Iterator[str]:
    """A JWKS URL on loopback that serves the public half of ``private_key`` (RSA) as the
    RS256 signing key ``kid``."""
    from jwt.algorithms import RSAAlgorithm

    public = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    finally:
        httpd.shutdown()
        httpd.server_close()


class LiveServer:
    """The project's ASGI app under uvicorn in a thread of the test process (so it uses the
    test database), on a free loopback port; its lifespan starts only the MCP session manager."""

    def __init__(self):
        import uvicorn

        from todo_project import http_limits

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            asgi_app_with_mcp_lifespan_only(),
            lifespan="on",
            log_level="warning",
            access_log=False,
            http=http_limits.PROTOCOL,  # as manage.py serve and the container run it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
