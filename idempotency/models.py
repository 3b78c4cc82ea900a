"""One row per ``Idempotency-Key`` a user sent with a write under ``/api/``.

The row is written in the transaction of the write it protects, with the answer the write got,
so the key exists exactly when the write committed.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from core.users import USER_ID_MAX_LENGTH

KEY_MAX_LENGTH = 255


class IdempotencyKey(models.Model):
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    key = models.CharField(max_length=KEY_MAX_LENGTH)
    fingerprint = models.CharField(
        max_length=64, help_text="SHA-256 of the method, path, query, If-Match and body."
    )
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(default=b"", blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="idempotency_user_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_age_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"
