"""``manage.py recount_tasks``: count each user's tasks again and correct the kept counts a
list's total is read from (``tasks.models.TaskCount``), naming the users whose counts were off."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks import services


class Command(BaseCommand):
    help = (
        "Count each user's tasks again and correct the kept counts lists read their totals "
        "from; needed only after tasks were written with triggers off."
    )

    def handle(self, *args, **options) -> None:
        corrected = services.task_counts_recount()
        if not corrected:
            self.stdout.write("Every user's task counts were right.")
            return
        self.stdout.write(f"Corrected the task counts of {len(corrected)} user(s):")
        for user_id in corrected:
            self.stdout.write(f"  {user_id}")
