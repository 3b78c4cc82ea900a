"""``/mcp`` and its metadata under a WSGI server (``manage.py runserver``).

Under ASGI (uvicorn, ``make run``) the router sends these paths to ``tasks.mcp.asgi`` before
Django sees them, so these views never run there. Under WSGI, each request runs the same ASGI
endpoint once, inside a session manager of its own: the endpoint is stateless, so a request
needs nothing from the one before.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


def _scope(request: HttpRequest) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ],
        "server": (request.META.get("SERVER_NAME", ""), int(request.META.get("SERVER_PORT") or 80)),
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
    }


async def _run_once(app, scope: dict, body: bytes, *, with_lifespan: bool) -> list[dict]:
    sent: list[dict] = []
    answered = asyncio.Event()
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    if with_lifespan:
        from tasks.mcp.asgi import lifespan

        async with lifespan(database_threads=False, listen=False):
            await app(scope, receive, send)
    else:
        await app(scope, receive, send)
    return sent


def _response(sent: list[dict]) -> HttpResponse:
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response = HttpResponse(body, status=start["status"])
    for name, value in start.get("headers", ()):
        key = name.decode("latin-1")
        if key.lower() != "content-length":
            response[key] = value.decode("latin-1")
    return response


@csrf_exempt
def mcp_endpoint(request: HttpRequest) -> HttpResponse:
    from tasks.mcp.asgi import mcp_app

    sent = async_to_sync(_run_once)(mcp_app, _scope(request), request.body, with_lifespan=True)
    return _response(sent)


@csrf_exempt
def protected_resource_metadata(request: HttpRequest) -> HttpResponse:
    from tasks.mcp.asgi import protected_resource_metadata as app

    sent = async_to_sync(_run_once)(app, _scope(request), b"", with_lifespan=False)
    return _response(sent)
