"""``python manage.py run_consumer <name>``: run one registered consumer as its own process."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events import conf
from events.consumers import UnknownConsumer, all_consumers, get_consumer
from events.runners import runner_for
from events.worker_process import run_until_signalled


class Command(BaseCommand):
    help = "Run a consumer: a Dapr streaming subscription, or the embedded log with a cursor."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="The consumer's registered name.")
        parser.add_argument("--list", action="store_true", help="List the registered consumers.")
        parser.add_argument("--broker", choices=["embedded", "dapr"], default=None)
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Port for /healthz, /readyz, /metrics (default METRICS_PORT; 0 turns it off).",
        )

    def handle(self, *args, name, list, broker, metrics_port, **options):
        if list or not name:
            for consumer in all_consumers():
                kinds = ", ".join(sorted(consumer.event_types)) if consumer.event_types else "all"
                self.stdout.write(f"{consumer.name}\t{','.join(consumer.topics)}\t{kinds}")
            if not name:
                return
        try:
            consumer = get_consumer(name)
        except UnknownConsumer as exc:
            raise CommandError(str(exc)) from None
        broker = broker or conf.get("EVENTS_BROKER")
        try:
            runner = runner_for(consumer, broker=broker)
        except ValueError as exc:  # a consumer that cannot run on this broker
            raise CommandError(str(exc)) from None
        port = settings.METRICS_PORT if metrics_port is None else metrics_port
        run_until_signalled(
            runner, name=f"consumer-{consumer.name}", metrics_port=port, listen=broker != "dapr"
        )
        self.stdout.write(f"consumer {consumer.name} stopped after {runner.handled} events")
