"""uvicorn's fast HTTP parser (httptools) with limits on the size of a request's head and on
the time it takes to arrive.

httptools puts no bound on the request line and headers: a client can send megabytes of headers
(8 MiB were accepted in testing) and the server buffers them all before the application sees
anything. This protocol counts the bytes of each request until its headers are complete and
answers ``431 Request Header Fields Too Large`` (then closes) beyond ``MAX_REQUEST_HEADER_BYTES``
(64 KiB by default). Bodies are limited separately (``MAX_REQUEST_BYTES``).

Nor does uvicorn bound the time a head takes: 300 connections that sent half a request line
were all still open after 90 s. Here a head must be complete within
``REQUEST_HEADER_TIMEOUT_SECONDS`` (10 s by default) of the connection's opening, or of the
first byte of the next request on a kept-alive connection (uvicorn's keep-alive timeout covers
the idle time before that byte); otherwise the answer is ``408 Request Timeout`` and the
connection is closed.

Serve with ``uvicorn --http core.http_limits:BoundedHttpToolsProtocol`` (``manage.py
serve`` and the container do).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_LIMIT = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
PROTOCOL = "core.http_limits:BoundedHttpToolsProtocol"


def _setting(name: str, default):
    try:
        from django.conf import settings

        return type(default)(getattr(settings, name, default))
    except Exception:  # settings not configured: a bare uvicorn
        return default


def header_limit() -> int:
    return _setting("MAX_REQUEST_HEADER_BYTES", DEFAULT_LIMIT)


def header_timeout() -> float:
    return _setting("REQUEST_HEADER_TIMEOUT_SECONDS", DEFAULT_HEADER_TIMEOUT)


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_limit = header_limit()
        self._head_timeout = header_timeout()
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True
        self._head_too_large = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        # A new connection's timer runs from its opening; a kept-alive one's from this byte.
        if self._head_timer is None:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._head_limit:
            # Raised inside the parser, this ends the request before the application sees it;
            # uvicorn answers through send_400_response, which says 431 instead.
            self._head_too_large = True
            raise _HeadTooLarge()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        in_head_before = self._in_head
        super().data_received(data)
        if in_head_before and self._in_head and not self.transport.is_closing():
            # A head that has not ended yet: count it, so that at most one chunk past the
            # limit is ever held.
            self._head_bytes += len(data)
            if self._head_bytes > self._head_limit:
                self._refuse_head()

    def _start_head_timer(self) -> None:
        if self._head_timeout > 0:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head stalled behind a response still being written: no room for ours.
            self.transport.close()
            return
        self._answer_and_close(408, b"Request header not received in time.")

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._answer_and_close(431, b"Request header fields too large.")

    def _answer_and_close(self, status: int, message: bytes) -> None:
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(message)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    message,
                ]
            )
        )
        self.transport.close()
