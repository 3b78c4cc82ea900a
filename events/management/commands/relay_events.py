"""``python manage.py relay_events``: publish committed outbox rows, as its own process."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from events import conf
from events.brokers import get_broker
from events.relay import Relay, relay_once
from events.worker_process import run_until_signalled


class Command(BaseCommand):
    help = "Publish committed outbox rows to the broker (Dapr pub/sub or the embedded log)."

    def add_arguments(self, parser):
        parser.add_argument("--broker", choices=["embedded", "dapr"], default=None)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Port for /healthz, /readyz, /metrics (default METRICS_PORT; 0 turns it off).",
        )

    def handle(self, *args, broker, batch_size, once, metrics_port, **options):
        broker = get_broker(broker or conf.get("EVENTS_BROKER"))
        if once:
            result = relay_once(broker, batch_size=batch_size)
            broker.close()
            self.stdout.write(f"published {result.published}")
            return
        relay = Relay(broker, batch_size=batch_size)
        port = settings.METRICS_PORT if metrics_port is None else metrics_port
        run_until_signalled(relay, name="relay", metrics_port=port)
        self.stdout.write(f"relay stopped; published {relay.published} events")
