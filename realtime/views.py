"""The live board at ``/``: a static page; everything it shows comes from the REST API and
the task socket, with the token the user pastes (or brings in ``/#token=``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def board(request: HttpRequest) -> HttpResponse:
    response = render(request, "realtime/board.html")
    # The page handles a bearer token: keep it out of frames and caches, and allow only our own
    # scripts and connections.
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response
