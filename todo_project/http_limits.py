"""uvicorn's fast HTTP parser (httptools) with a limit on the size of a request's head.

httptools puts no bound on the request line and headers: a client can send megabytes of headers
(8 MiB were accepted in testing) and the server buffers them all before the application sees
anything. This protocol counts the bytes of each request until its headers are complete and
answers ``431 Request Header Fields Too Large`` (then closes) beyond ``MAX_REQUEST_HEADER_BYTES``
(64 KiB by default). Bodies are limited separately (``MAX_REQUEST_BYTES``).

Serve with ``uvicorn --http todo_project.http_limits:BoundedHttpToolsProtocol`` (``manage.py
serve`` and the container do).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_LIMIT = 64 * 1024
PROTOCOL = "todo_project.http_limits:BoundedHttpToolsProtocol"


def header_limit() -> int:
    try:
        from django.conf import settings

        return int(getattr(settings, "MAX_REQUEST_HEADER_BYTES", DEFAULT_LIMIT))
    except Exception:  # settings not configured: a bare uvicorn
        return DEFAULT_LIMIT


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_limit = header_limit()
        self._head_bytes = 0
        self._in_head = True
        self._head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
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

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        message = b"Request header fields too large."
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(message)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    message,
                ]
            )
        )
        self.transport.close()
