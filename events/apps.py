from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        from events import metrics  # noqa: F401  (every process exports every metric)
        from events.dead_letters import register_dead_letter_consumer

        register_dead_letter_consumer()
