"""``python manage.py export_event_schemas``: write the JSON Schema of every event type to
``docs/events/`` (``--check`` only says whether the files are current)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.schemas import event_types, json_schema


def schema_files() -> dict[str, str]:
    files = {}
    for name, kind in sorted(event_types().items()):
        text = json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
        files[f"{name}.v{kind.version}.schema.json"] = text
    return files


class Command(BaseCommand):
    help = "Write the JSON Schemas of the event envelopes to docs/events/."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "docs" / "events"))
        parser.add_argument("--check", action="store_true")

    def handle(self, *args, out, check, **options):
        directory = Path(out)
        files = schema_files()
        stale = [
            name
            for name, text in files.items()
            if not (directory / name).exists() or (directory / name).read_text() != text
        ]
        extra = (
            sorted(path.name for path in directory.glob("*.schema.json") if path.name not in files)
            if directory.exists()
            else []
        )
        if check:
            if stale or extra:
                raise CommandError(
                    f"docs/events is out of date (stale: {stale}, unknown: {extra}); "
                    "run python manage.py export_event_schemas"
                )
            self.stdout.write("event schemas are current")
            return
        directory.mkdir(parents=True, exist_ok=True)
        for name in extra:
            (directory / name).unlink()
        for name, text in files.items():
            (directory / name).write_text(text)
        self.stdout.write(f"wrote {len(files)} schemas to {directory}")
