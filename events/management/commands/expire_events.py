"""``python manage.py expire_events``: delete idempotency keys and sent outbox rows past the
retention (``EVENTS_RETENTION_DAYS``, 7 by default). The relay also does this every hour."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from events.services import events_expire


class Command(BaseCommand):
    help = "Delete idempotency keys and sent outbox rows older than the retention."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=None, help="Override the retention.")

    def handle(self, *args, days, **options):
        if days is not None and days < 0:
            raise CommandError("--days must not be negative")
        deleted = events_expire(older_than=timedelta(days=days) if days is not None else None)
        self.stdout.write(
            f"deleted {deleted['processed']} idempotency keys and {deleted['outbox']} outbox rows"
        )
