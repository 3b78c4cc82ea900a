"""Helpers for the project's tests (importable from any test package)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rest_framework.test import APIClient

from core.auth import issue_token


def client_for(user: str) -> APIClient:
    """A DRF test client that sends a valid bearer token for ``user``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
    return client


def asgi_app_with_mcp_lifespan_only():
    """The project's ASGI app for a live test server: its lifespan starts only the MCP session
    manager (the in-process workers of the other apps stay out of the test)."""
    from channels.routing import ProtocolTypeRouter

    from tasks.mcp.asgi import lifespan as mcp_lifespan
    from todo_project.asgi import http_app, websocket_app
    from todo_project.lifespan import Lifespan

    return ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": websocket_app,
            "lifespan": Lifespan(lambda: [("mcp", mcp_lifespan)]),
        }
    )


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


def end_other_database_connections() -> None:
    """Server threads keep database connections; the test database cannot be flushed or
    dropped while they exist."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


class LiveServer:
    """An ASGI app under uvicorn in a thread of the test process (so it uses the test database),
    on a loopback port, served with the bounded HTTP protocol as ``manage.py serve`` serves it.
    The default app is the project's, with a lifespan that starts only the MCP session manager.
    Use it as a context manager, or ``start``/``stop``/``start_again`` (a restart, same port)."""

    def __init__(self, app=None, port: int = 0, log_level: str = "warning"):
        self.app = app if app is not None else asgi_app_with_mcp_lifespan_only()
        self.log_level = log_level
        self._build(port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def _build(self, port: int) -> None:
        import uvicorn

        from core import http_limits

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_config=None,  # keep the project's logging (and pytest's capture) as it is
            log_level=self.log_level,
            access_log=False,
            http=http_limits.PROTOCOL,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="live-asgi-server", daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        finally:
            loop.close()

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def start_again(self) -> LiveServer:
        """A fresh server on the same port after ``stop``: to its clients, a restart."""
        self._build(self.port)
        return self.start()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- hostile input, shared by each surface's hostile-input tests ------------------------------

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "'; DROP TABLE tasks_task; --",
    "a & b | !c",
    "foo:* <-> bar",
    "((( ",
    "\\",
    '"',
    "x" * 5000,
    "🙂" * 60,
    "2026-02-30T25:61:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "-1h",
    "99999999w",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=SECONDLY;INTERVAL=0",
    "RRULE:FREQ=DAILY;COUNT=-1",
    "every 0 weeks",
    "Europe/Nowhere",
    "../../etc/passwd",
]


def hostile_values():
    """A hypothesis strategy for JSON values of any shape, with nasty text among the strings."""
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=60)
        | st.sampled_from(NASTY_TEXT)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=25) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=30,
    )


FORGERIES = [
    "alg_none",
    "rs256_when_hs256_configured",
    "wrong_secret",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "no_subject",
]


def use_strict_claims(settings) -> None:
    """Issuer, audience and no leeway configured (``settings`` is pytest-django's fixture)."""
    settings.JWT_ISSUER = "https://auth.example"
    settings.JWT_AUDIENCE = "todo-api"
    settings.JWT_LEEWAY_SECONDS = 0


def forged_token(kind: str, user: str) -> str:
    """A token for ``user`` that must be refused, one of ``FORGERIES``."""
    import jwt
    from django.conf import settings

    now = int(time.time())
    claims = {
        "sub": user,
        "iat": now,
        "exp": now + 600,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    if kind == "alg_none":
        return jwt.encode(claims, key=None, algorithm="none")
    if kind == "rs256_when_hs256_configured":
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256")
    if kind == "wrong_secret":
        return jwt.encode(claims, "another-secret-that-is-long-enough-0000", algorithm="HS256")
    if kind == "expired":
        claims["exp"] = now - 3600
    elif kind == "not_yet_valid":
        claims["nbf"] = now + 3600
    elif kind == "wrong_issuer":
        claims["iss"] = "https://evil.example"
    elif kind == "wrong_audience":
        claims["aud"] = "someone-else"
    elif kind == "no_subject":
        del claims["sub"]
    return jwt.encode(claims, settings.JWT_SECRET, algorithm="HS256")


def signed_token(claims: dict) -> str:
    """A token signed with this deployment's secret carrying exactly ``claims``."""
    import jwt
    from django.conf import settings

    return jwt.encode(claims, settings.JWT_SECRET, algorithm="HS256")


@contextmanager
def jwks_keys(settings) -> Iterator:
    """A new RSA key published at a loopback JWKS URL that ``settings`` point at; yields it."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from core.auth import _jwks_client

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with jwks_endpoint(key) as url:
        settings.JWT_JWKS_URL = url
        settings.JWT_ALGORITHMS = ["RS256"]
        _jwks_client.cache_clear()
        try:
            yield key
        finally:
            _jwks_client.cache_clear()


def hs256_with_public_key(claims: dict, private_key) -> str:
    """The algorithm-confusion token: HS256 keyed with the PEM of the RSA public key. PyJWT
    itself refuses to HMAC with a PEM key, so it is built by hand."""
    import base64
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = (
        b64(b'{"alg":"HS256","typ":"JWT","kid":"k1"}') + b"." + b64(json.dumps(claims).encode())
    )
    return (
        signing_input + b"." + b64(hmac.new(pem, signing_input, hashlib.sha256).digest())
    ).decode()


class McpClient:
    """One MCP session over HTTP with the official client, kept open on an event loop of its
    own; ``call`` runs one tool call on it and waits for the result."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.ready: Future = Future()
        self.queue: asyncio.Queue | None = None

    async def _serve(self) -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        self.queue = asyncio.Queue()
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                streamable_http_client(self.url, http_client=http) as (read, write, *_),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self.ready.set_result(None)
                while (item := await self.queue.get()) is not None:
                    name, arguments, result = item
                    try:
                        result.set_result(await session.call_tool(name, arguments))
                    except Exception as exc:  # handed to the caller, which fails the test
                        result.set_exception(exc)
        except Exception as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    def __enter__(self) -> McpClient:
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.ready.result(timeout=30)
        return self

    def call(self, name: str, arguments: dict):
        result: Future = Future()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (name, arguments, result))
        return result.result(timeout=15)

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
        self.task.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def assert_clean_tool_result(result) -> None:
    """A success with structured content, or a refusal that says what was wrong: never the
    generic error the SDK gives for an exception that escaped a tool."""
    text = result.content[0].text if result.content else ""
    if result.is_error:
        # No structured content: clients check it against the output schema, errors included.
        assert result.structured_content is None, f"error with structured content: {text!r}"
        error = (result.meta or {}).get("error") or {}
        assert error.get("code"), f"tool error without a code: {text!r}"
        assert error["code"] != "internal_error", text
        assert not text.startswith("Error executing tool"), f"an exception escaped: {text!r}"
    else:
        assert result.structured_content, f"success without structured content: {text!r}"
    assert "Traceback" not in text
