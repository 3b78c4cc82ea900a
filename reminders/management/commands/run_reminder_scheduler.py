"""``python manage.py run_reminder_scheduler``: fire due reminders (embedded mode), or re-sync
reminders whose Dapr Jobs API call failed (Dapr mode). Any number may run at once."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from events.worker_process import run_until_signalled
from reminders.scheduler import ReminderScheduler


class Command(BaseCommand):
    help = "Run the reminder scheduler until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument(
            "--max-sleep", type=float, default=5.0, help="longest wait between looks (s)"
        )
        parser.add_argument(
            "--once", action="store_true", help="fire (or re-sync) what is due now and exit"
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="port for /healthz, /readyz, /metrics (default METRICS_PORT; 0 turns it off)",
        )

    def handle(self, *args, batch_size, max_sleep, once, metrics_port, **options):
        scheduler = ReminderScheduler(batch_size=batch_size, max_sleep=max_sleep)
        if once:
            if scheduler.dapr:
                from reminders import jobs

                synced, failed = jobs.sync_pending_jobs(older_than=timedelta(0))
                self.stdout.write(f"re-synced {synced} reminder jobs, {failed} failed")
            else:
                self.stdout.write(f"fired {scheduler.fire_due()} reminders")
            return
        port = settings.METRICS_PORT if metrics_port is None else metrics_port
        self.stdout.write(
            f"reminder scheduler {scheduler.name}: "
            f"{'re-syncing Dapr jobs' if scheduler.dapr else 'firing due reminders'}"
        )
        # /healthz, /readyz (the last pass reached the database) and /metrics on the port.
        run_until_signalled(scheduler, name="reminder-scheduler", metrics_port=port, listen=False)
