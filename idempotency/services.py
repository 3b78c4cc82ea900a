"""Claiming a key, keeping the answer, and expiring old keys.

A request with a key runs in one transaction that starts with ``key_claim``: it inserts the
user's key (or takes over one that has expired). A second request with the same key waits on
that row, because its insert waits for the first transaction, for up to
``IDEMPOTENCY_WAIT_SECONDS``; when the first commits, the second reads its answer. A claim that
ends in an error is rolled back with the write, so the key is free again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.db import OperationalError, connection
from django.utils import timezone

from core.locking import USER_LOCK, USER_LOCK_SEED
from idempotency import conf

_LOCK_NOT_AVAILABLE = "55P03"

# One round trip: the wait for a concurrent holder of the key is bounded by lock_timeout for
# this statement only (the previous value is put back when the key was claimed; otherwise the
# transaction only reads the stored answer and ends).
_CLAIM = """
WITH setting AS (
    SELECT current_setting('lock_timeout') AS previous,
           set_config('lock_timeout', %(wait)s, true) AS wait
),
claimed AS (
    INSERT INTO idempotency_idempotencykey AS k
        (user_id, key, fingerprint, method, path, status, headers, body, created_at)
    SELECT %(user_id)s, %(key)s, %(fingerprint)s, %(method)s, %(path)s, NULL, '{}', '', now()
    FROM setting
    ON CONFLICT (user_id, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, method = EXCLUDED.method, path = EXCLUDED.path,
        status = NULL, headers = '{}', body = '', created_at = EXCLUDED.created_at
    WHERE k.created_at < %(expired_before)s
    RETURNING k.id
)
SELECT claimed.id, set_config('lock_timeout', setting.previous, true), {user_lock}
FROM claimed, setting
"""
# Once the key is claimed the statement also takes the user's lock (after the lock timeout is
# put back: waiting for the user's other writes is not a key in flight).
_CLAIM = _CLAIM.replace("{user_lock}", USER_LOCK.format(user="%(user_id)s", seed="%(lock_seed)s"))

_STORED = """
SELECT fingerprint, status, headers, body FROM idempotency_idempotencykey
WHERE user_id = %s AND key = %s
"""


class KeyInFlight(Exception):
    """Another request with this key has not finished within the wait."""


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """Either this request owns the key (``key_id``) or an earlier one answered (``stored``)."""

    key_id: int | None = None
    stored: StoredAnswer | None = None


def request_fingerprint(*, method: str, path: str, if_match: str, body: bytes) -> str:
    """What makes two requests "the same request" for a key."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), if_match.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def key_claim(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    attempts: int = 2,
) -> Claim:
    """Claim ``key`` for this request in the current transaction, or return the answer of the
    request that holds it. Raises ``KeyInFlight`` when that request is still running.

    A claim also takes the user's lock (``core.locking``) in the same round trip; the caller
    then says so with ``core.locking.user_locked_by_caller``."""
    ttl = timedelta(hours=conf.get("IDEMPOTENCY_KEY_TTL_HOURS"))
    params = {
        "wait": f"{max(1, int(conf.get('IDEMPOTENCY_WAIT_SECONDS') * 1000))}ms",
        "user_id": user_id,
        "key": key,
        "fingerprint": fingerprint,
        "method": method,
        "path": path[:2048],
        "expired_before": timezone.now() - ttl,
        "lock_seed": USER_LOCK_SEED,
    }
    with connection.cursor() as cursor:
        for _ in range(attempts):
            try:
                cursor.execute(_CLAIM, params)
            except OperationalError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                    raise KeyInFlight(key) from None
                raise
            row = cursor.fetchone()
            if row is not None:
                return Claim(key_id=row[0])
            cursor.execute(_STORED, [user_id, key])
            stored = cursor.fetchone()
            if stored is None:
                continue  # expired and deleted in between: claim again
            fingerprint_, status, headers, body = stored
            if status is None:
                raise KeyInFlight(key)
            return Claim(
                stored=StoredAnswer(
                    fingerprint=fingerprint_,
                    status=status,
                    headers=headers if isinstance(headers, dict) else orjson.loads(headers),
                    body=bytes(body),
                )
            )
    raise KeyInFlight(key)


def key_record_answer(*, key_id: int, status: int, headers: dict[str, str], body: bytes) -> None:
    """Keep the answer with the claimed key, before the transaction commits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE idempotency_idempotencykey SET status = %s, headers = %s::jsonb, body = %s "
            "WHERE id = %s",
            [status, orjson.dumps(headers).decode(), body, key_id],
        )


def keys_expire(*, older_than: timedelta | None = None, chunk: int = 10_000) -> int:
    """Delete keys older than their time to live; returns how many went."""
    age = (
        older_than
        if older_than is not None
        else timedelta(hours=conf.get("IDEMPOTENCY_KEY_TTL_HOURS"))
    )
    cutoff = timezone.now() - age
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                """
                DELETE FROM idempotency_idempotencykey WHERE id = ANY(ARRAY(
                    SELECT id FROM idempotency_idempotencykey WHERE created_at < %s LIMIT %s))
                """,
                [cutoff, chunk],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < chunk:
                return deleted
