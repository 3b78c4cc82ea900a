"""``Idempotency-Key`` on every write under ``/api/`` (draft-ietf-httpapi-idempotency-key-header).

The same key with the same request answers the first answer again and changes nothing; the same
key with another request is 422 ``idempotency_key_reused``; a key whose request is still running
is 409 ``idempotency_key_in_flight`` (after waiting a few seconds for it to finish). The request
runs in one transaction with its key and answer, so a committed write always has its key.
Only successful answers (2xx) are kept: an error changed nothing (its transaction is rolled
back), so repeating the request is safe and may succeed (a 409 or 429 that has gone away).
Requests without a valid token are left to the view (401), unkeyed.

The key is claimed under the token's subject once the token verifies (a forged token claims and
reads nothing), and the claim takes the user's lock in the same round trip
(``core.locking``): a keyed write makes two statements more than a plain one, the claim and
the stored answer.
"""

from __future__ import annotations

import re

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.auth import AuthError, bearer_from_header, verify_request_token
from core.errors import error_body
from core.locking import user_locked_by_caller
from core.middleware import is_api_path
from idempotency.models import KEY_MAX_LENGTH
from idempotency.services import (
    KeyInFlight,
    StoredAnswer,
    key_claim,
    key_record_answer,
    request_fingerprint,
)
from idempotency.transactions import request_transaction

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The headers of an answer that belong to it and are given again with it.
KEPT_HEADERS = ("Content-Type", "ETag", "Location", "X-Sequence")
# Visible ASCII and spaces: what a Structured Fields string may hold.
_KEY_TEXT = re.compile(r"[\x20-\x7e]+")


class InvalidKey(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def parse_key(raw: str) -> str:
    """The key from the header: a Structured Fields string (``"abc"``) as the draft says, or
    the bare token most clients send."""
    value = raw.strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not value:
        raise InvalidKey("blank", f"{HEADER} may not be empty.")
    if len(value) > KEY_MAX_LENGTH:
        raise InvalidKey("max_length", f"{HEADER} must be at most {KEY_MAX_LENGTH} characters.")
    if not _KEY_TEXT.fullmatch(value):
        raise InvalidKey("invalid", f"{HEADER} must be printable ASCII text.")
    return value


def _token(request: HttpRequest) -> str | None:
    return bearer_from_header(request.META.get("HTTP_AUTHORIZATION"))


def _verified_caller(request: HttpRequest) -> str | None:
    """The user the request's token proves it comes from (the view checks it again and
    answers 401 for a token that does not verify)."""
    token = _token(request)
    if token is None:
        return None
    try:
        return verify_request_token(request, token).id  # a user id: verify_token checks it
    except AuthError:
        return None


def _refusal(status: int, code: str, message: str, *, field: str | None = None) -> JsonResponse:
    fields = [{"field": field, "code": code, "message": message}] if field else None
    return JsonResponse(
        error_body(code if not field else "invalid", message, fields), status=status
    )


def _replay(stored: StoredAnswer) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        raw = request.headers.get(HEADER)
        if raw is None or request.method not in WRITE_METHODS or not is_api_path(request.path_info):
            return self.get_response(request)
        user_id = _verified_caller(request)
        if user_id is None:
            return self.get_response(request)
        try:
            key = parse_key(raw)
        except InvalidKey as exc:
            return _refusal(400, exc.code, exc.message, field=HEADER)
        try:
            body = request.body
        except RequestDataTooBig:
            return self.get_response(request)  # the view answers 413
        path = request.get_full_path()
        fingerprint = request_fingerprint(
            method=request.method or "",
            path=path,
            if_match=request.headers.get("If-Match", ""),
            body=body,
        )
        try:
            return self._once(request, user_id=user_id, key=key, fingerprint=fingerprint, path=path)
        except KeyInFlight:
            response = _refusal(
                409,
                "idempotency_key_in_flight",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            )
            response["Retry-After"] = "1"
            return response

    def _once(self, request: HttpRequest, *, user_id: str, key: str, fingerprint: str, path: str):
        with request_transaction():
            claim = key_claim(
                user_id=user_id,
                key=key,
                fingerprint=fingerprint,
                method=request.method or "",
                path=path,
            )
            if claim.stored is not None:
                if claim.stored.fingerprint != fingerprint:
                    return _refusal(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used for a different request.",
                    )
                return _replay(claim.stored)
            with user_locked_by_caller(user_id):
                response = self.get_response(request)
            if 200 <= response.status_code < 300 and not response.streaming:
                assert claim.key_id is not None
                key_record_answer(
                    key_id=claim.key_id,
                    status=response.status_code,
                    headers={name: response[name] for name in KEPT_HEADERS if name in response},
                    body=response.content,
                )
            else:
                # Nothing of a refused or failed request is kept, its key included.
                transaction.set_rollback(True)
            return response
