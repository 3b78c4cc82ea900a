"""``python manage.py replay_dead_letter <id> [<id> ...]``: run dead letters through their
consumer again (the admin's "Replay" action, from a shell)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from events.models import DeadLetter
from events.services import ReplayFailed, dead_letter_replay


class Command(BaseCommand):
    help = "Replay dead letters by id."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="+", type=int)

    def handle(self, *args, ids, **options):
        failed = 0
        for dead_letter_id in ids:
            try:
                outcome = dead_letter_replay(dead_letter_id=dead_letter_id)
            except DeadLetter.DoesNotExist:
                self.stderr.write(f"{dead_letter_id}: no such dead letter")
                failed += 1
            except ReplayFailed as exc:
                self.stderr.write(f"{dead_letter_id}: failed again: {exc}")
                failed += 1
            else:
                self.stdout.write(f"{dead_letter_id}: {outcome}")
        if failed:
            raise CommandError(f"{failed} of {len(ids)} dead letters were not replayed")
