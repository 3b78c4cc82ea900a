"""The WebSocket handshake: where the token is, whether the Origin may connect, the cursor.

The token comes in ``Sec-WebSocket-Protocol: bearer, <jwt>`` (browsers cannot set other headers
on a WebSocket; the server then selects the ``bearer`` subprotocol) or in ``?token=``. The query
string is redacted from the server's log lines (``realtime.redaction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http.request import validate_host

from core.auth import INSUFFICIENT_SCOPE, TokenUser
from core.hosts import header

BEARER_SUBPROTOCOL = "bearer"
MAX_SEQUENCE = 2**63 - 1


class HandshakeError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Handshake:
    token: str | None
    subprotocol: str | None  # what to accept with: "bearer" when the client offered it
    last_sequence: int | None


def parse(scope) -> Handshake:
    """Read the handshake; ``HandshakeError`` for a malformed ``last_sequence``."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    protocols = list(scope.get("subprotocols") or ())
    subprotocol = None
    token = None
    if BEARER_SUBPROTOCOL in protocols:
        subprotocol = BEARER_SUBPROTOCOL
        index = protocols.index(BEARER_SUBPROTOCOL)
        token = protocols[index + 1] if index + 1 < len(protocols) else None
    if not token:
        values = query.get("token")
        token = values[-1] if values else None
    last_sequence = None
    raw = query.get("last_sequence")
    if raw and raw[-1] != "":
        last_sequence = parse_sequence(raw[-1])
    return Handshake(token=token or None, subprotocol=subprotocol, last_sequence=last_sequence)


def scope_refusal(user: TokenUser) -> str | None:
    """Why this token may not open a task socket (a socket only reads: ``tasks:read`` or
    ``tasks:write``, or a token without a ``scope`` claim), or ``None``."""
    return None if user.can_read else INSUFFICIENT_SCOPE


def parse_sequence(value) -> int:
    if isinstance(value, bool):
        raise HandshakeError("last_sequence must be a non-negative integer")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise HandshakeError("last_sequence must be a non-negative integer")
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_SEQUENCE:
        raise HandshakeError("last_sequence must be a non-negative integer")
    return value


def origin_allowed(scope) -> bool:
    """Browsers send ``Origin``; other clients need not. A browser origin must be one the
    deployment serves (``ALLOWED_HOSTS``) or one it trusts (``REALTIME_ALLOWED_ORIGINS``,
    ``CSRF_TRUSTED_ORIGINS``, ``CORS_ALLOWED_ORIGINS``)."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    trusted = [
        *settings.REALTIME_ALLOWED_ORIGINS,
        *settings.CSRF_TRUSTED_ORIGINS,
        *settings.CORS_ALLOWED_ORIGINS,
    ]
    if "*" in trusted or origin in trusted:
        return True
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    if not host:
        return False
    if ":" in host:
        host = f"[{host}]"
    return validate_host(host, settings.ALLOWED_HOSTS)
