"""Bearer JWT verification, shared by REST, MCP and WebSocket.

Tokens come from the frontend's Better Auth: HS256 with a shared secret (``JWT_SECRET``), or
asymmetric keys published at ``JWT_JWKS_URL``. Only the configured algorithms are accepted, so
``alg: none`` and HS/RS confusion are refused; ``exp`` and ``sub`` are required; ``iss``, ``aud``
are checked when configured.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from core.users import is_user_id

_HMAC = {"HS256", "HS384", "HS512"}
# Control characters (C0, DEL, C1) and lone surrogates: no user id, and unstorable or unprintable.


class AuthError(Exception):
    """Why a token was refused; ``code`` is stable and safe to show."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


READ_SCOPE = "tasks:read"
WRITE_SCOPE = "tasks:write"
INSUFFICIENT_SCOPE = "insufficient_scope"


def token_scopes(claims: dict) -> frozenset[str] | None:
    """The scopes a token grants (OAuth's space-separated ``scope``, or a list as some identity
    providers send), or ``None`` for a token without a ``scope`` claim, which is not limited."""
    scope = claims.get("scope")
    if scope is None:
        return None
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(item for item in scope if isinstance(item, str))
    return frozenset()


@dataclass(frozen=True)
class TokenUser:
    """The caller as a JWT describes them. ``id`` is the ``sub`` claim."""

    id: str
    claims: dict
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.id

    @property
    def can_read(self) -> bool:
        """Reading tasks needs ``tasks:read`` (or ``tasks:write``, which includes it)."""
        scopes = token_scopes(self.claims)
        return scopes is None or bool(scopes & {READ_SCOPE, WRITE_SCOPE})

    @property
    def can_write(self) -> bool:
        scopes = token_scopes(self.claims)
        return scopes is None or WRITE_SCOPE in scopes

    def __str__(self) -> str:
        return self.id


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


def _verification_key(token: str, algorithm: str):
    if settings.JWT_JWKS_URL:
        if algorithm in _HMAC:
            raise AuthError(
                "invalid_token", "Symmetric algorithms are not accepted with JWKS keys."
            )
        try:
            return _jwks_client(settings.JWT_JWKS_URL).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:
            raise AuthError("invalid_token", f"No usable signing key: {exc}") from None
    if algorithm not in _HMAC:
        raise AuthError("invalid_token", "Only the shared-secret algorithms are configured.")
    return settings.JWT_SECRET


# Tokens verified lately, by their text and the settings they were verified under: a client
# sends the same token with every request, and verifying it again (each segment decoded and
# checked twice, the JSON parsed, the signature computed) was a tenth of a list page's work.
# An entry is used until the token expires, and for at most ``_RECENT_SECONDS``: a key withdrawn
# from a JWKS key set is honoured no longer than PyJWT's own copy of the set (five minutes)
# honours it. When full, the whole table is dropped (a client's next request verifies again).
_RECENT_SECONDS = 60.0
_RECENT_MAX = 4096
_recent: dict[tuple, tuple[TokenUser, float]] = {}
_recent_lock = threading.Lock()


def _verification_settings() -> tuple:
    return (
        settings.JWT_SECRET,
        settings.JWT_JWKS_URL,
        tuple(settings.JWT_ALGORITHMS),
        settings.JWT_ISSUER,
        settings.JWT_AUDIENCE,
        settings.JWT_LEEWAY_SECONDS,
    )


def verify_token(token: str) -> TokenUser:
    """The caller ``token`` names, once its signature and claims are checked; ``AuthError``
    says why a token is refused."""
    key = (token, _verification_settings())
    now = time.time()
    recent = _recent.get(key)
    if recent is not None and now < recent[1]:
        return recent[0]
    user = _verified(token)
    # Valid while ``exp`` plus the leeway has not passed (PyJWT's own test).
    until = min(now + _RECENT_SECONDS, float(user.claims["exp"]) + settings.JWT_LEEWAY_SECONDS)
    with _recent_lock:
        if len(_recent) >= _RECENT_MAX:
            _recent.clear()
        _recent[key] = (user, until)
    return user


def _verified(token: str) -> TokenUser:
    if not token or len(token) > 8192:
        raise AuthError("invalid_token", "Missing or oversized token.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("invalid_token", "Malformed token.") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in settings.JWT_ALGORITHMS:
        raise AuthError("invalid_token", "Token algorithm is not accepted.")
    key = _verification_key(token, algorithm)
    options = {"require": ["exp", "sub"]}
    kwargs: dict = {"algorithms": [algorithm], "leeway": settings.JWT_LEEWAY_SECONDS}
    if settings.JWT_ISSUER:
        kwargs["issuer"] = settings.JWT_ISSUER
        options["require"].append("iss")
    if settings.JWT_AUDIENCE:
        kwargs["audience"] = settings.JWT_AUDIENCE
        options["require"].append("aud")
    else:
        options["verify_aud"] = False
    try:
        claims = jwt.decode(token, key, options=options, **kwargs)
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired", "Token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("invalid_token", "Token is not valid yet.") from None
    except jwt.InvalidAudienceError:
        raise AuthError("invalid_token", "Token audience is wrong.") from None
    except jwt.InvalidIssuerError:
        raise AuthError("invalid_token", "Token issuer is wrong.") from None
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_token", f"Invalid token: {exc}") from None
    subject = claims.get("sub")
    if not is_user_id(subject):
        raise AuthError("invalid_token", "Token subject must be a user id.")
    return TokenUser(id=subject, claims=claims)


async def verify_token_async(token: str) -> TokenUser:
    """``verify_token`` for asynchronous endpoints (MCP, WebSockets): with a JWKS URL the key
    set may be fetched over the network, so that check runs off the event loop."""
    if settings.JWT_JWKS_URL:
        return await sync_to_async(verify_token, thread_sensitive=False)(token)
    return verify_token(token)


def issue_token(user_id: str, *, ttl_seconds: int | None = None, extra: dict | None = None) -> str:
    """A token this deployment accepts (development and tests; needs ``JWT_SECRET``)."""
    if not settings.JWT_SECRET:
        raise RuntimeError(
            "issue_token needs JWT_SECRET (HS256); with JWKS, tokens come from the IdP."
        )
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + (ttl_seconds or settings.JWT_DEFAULT_TTL_SECONDS),
    }
    if settings.JWT_ISSUER:
        claims["iss"] = settings.JWT_ISSUER
    if settings.JWT_AUDIENCE:
        claims["aud"] = settings.JWT_AUDIENCE
    claims.update(extra or {})
    return jwt.encode(claims, settings.JWT_SECRET, algorithm="HS256")


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class TokenScopePermission(permissions.BasePermission):
    """A token limited by its ``scope`` reads with ``tasks:read`` and writes (any method but
    GET, HEAD, OPTIONS) with ``tasks:write``; a token without a ``scope`` claim may do both."""

    code = INSUFFICIENT_SCOPE

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not isinstance(user, TokenUser):
            return True  # not a bearer token: the other permission classes decide
        if request.method in permissions.SAFE_METHODS:
            self.message = f"This token's scope does not allow reading; it needs {READ_SCOPE}."
            return user.can_read
        self.message = f"This token's scope does not allow changes; it needs {WRITE_SCOPE}."
        return user.can_write


_VERIFIED = "_verified_bearer"


def verify_request_token(request, token: str) -> TokenUser:
    """``verify_token`` for a Django request's bearer token, remembered on the request: a
    middleware that needs the caller (``idempotency``), the view, and the requests a bulk
    request runs its operations as (``share_verified``) then verify it once."""
    user = verify_token(token)
    setattr(request, _VERIFIED, (token, user))
    return user


def verified_before(request, token: str) -> TokenUser | None:
    verified = getattr(request, _VERIFIED, None)
    return verified[1] if verified is not None and verified[0] == token else None


def share_verified(request, other) -> None:
    """Let ``other``, a request made from ``request`` with the same token, reuse its
    verification."""
    verified = getattr(request, _VERIFIED, None)
    if verified is not None:
        setattr(other, _VERIFIED, verified)


class JWTAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        token = bearer_from_header(header)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "Use the Authorization: Bearer <token> header.", code="invalid_token"
            )
        try:
            user = verified_before(request._request, token) or verify_request_token(
                request._request, token
            )
        except AuthError as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        return user, user.claims

    def authenticate_header(self, request):
        return f'Bearer realm="{self.www_authenticate_realm}"'
