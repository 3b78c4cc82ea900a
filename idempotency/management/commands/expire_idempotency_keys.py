"""``python manage.py expire_idempotency_keys``: delete keys past their time to live
(``IDEMPOTENCY_KEY_TTL_HOURS``, 24 by default). The events retention sweep does it too."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from idempotency.services import keys_expire


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than their time to live."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=None, help="Override the TTL.")

    def handle(self, *args, hours, **options):
        if hours is not None and hours < 0:
            raise CommandError("--hours must not be negative")
        deleted = keys_expire(older_than=timedelta(hours=hours) if hours is not None else None)
        self.stdout.write(f"deleted {deleted} idempotency keys")
