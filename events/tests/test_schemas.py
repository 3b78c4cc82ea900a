"""Envelope schemas: strict on what matters, generated JSON Schemas kept current."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from events.management.commands.export_event_schemas import schema_files
from events.models import OutboxEvent
from events.schemas import InvalidEnvelope, event_types, new_event_id, parse_envelope
from tasks import services

DOCS = Path(settings.BASE_DIR) / "docs" / "events"


def test_the_schema_files_in_docs_are_current():
    # given the schemas generated from the models now
    files = schema_files()
    # then docs/events holds exactly those files with exactly that text
    on_disk = {path.name: path.read_text() for path in DOCS.glob("*.schema.json")}
    assert on_disk == files, "run: python manage.py export_event_schemas"
    assert set(files) == {f"{name}.v1.schema.json" for name in event_types()}


def test_export_check_fails_when_a_schema_is_stale(tmp_path):
    call_command("export_event_schemas", out=str(tmp_path))
    (tmp_path / "task.created.v1.schema.json").write_text("{}")
    with pytest.raises(CommandError, match="out of date"):
        call_command("export_event_schemas", out=str(tmp_path), check=True)


@pytest.mark.django_db
def test_every_recorded_envelope_matches_its_published_json_schema(user_id):
    # given one event of each task type
    task = services.task_create(user_id=user_id, title="a", tags=["x"], priority="high")
    services.task_update(user_id=user_id, task_id=task.pk, changes={"tags": ["x", "y"]})
    services.task_complete(user_id=user_id, task_id=task.pk)
    services.task_reopen(user_id=user_id, task_id=task.pk)
    services.task_delete(user_id=user_id, task_id=task.pk)
    # then each validates against docs/events/<type>.v1.schema.json
    for row in OutboxEvent.objects.filter(user_id=user_id):
        schema = json.loads((DOCS / f"{row.event_type}.v1.schema.json").read_text())
        jsonschema.validate(row.envelope, schema)
        wrong = {**row.envelope, "schema_version": 2}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


def _valid_created() -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "task.created",
        "schema_version": 1,
        "user_id": "u1",
        "timestamp": "2025-01-31T09:00:00+01:00",
        "sequence": 1,
        "payload": {
            "task_id": 7,
            "task_data": {
                "id": 7,
                "title": "t",
                "description": "",
                "completed": False,
                "completed_at": None,
                "priority": "medium",
                "tags": [],
                "due_date": None,
                "reminder_time": None,
                "remind_at": None,
                "recurrence_pattern": "none",
                "series_id": None,
                "series_index": 0,
                "timezone": "UTC",
                "created_at": "2025-01-31T08:00:00Z",
                "updated_at": "2025-01-31T08:00:00Z",
                "version": 1,
                "a_field_added_later": "ignored by consumers",
            },
        },
    }


def test_a_valid_envelope_parses_and_its_timestamp_is_utc():
    envelope = parse_envelope(json.dumps(_valid_created()))
    assert envelope.timestamp.isoformat() == "2025-01-31T08:00:00+00:00"
    assert json.loads(envelope.model_dump_json())["timestamp"] == "2025-01-31T08:00:00Z"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda e: e.update(event_type="task.unknown"), "Unknown event type"),
        (lambda e: e.update(schema_version=2), "schema_version"),
        (lambda e: e.update(sequence=0), "sequence"),
        (lambda e: e.update(timestamp="2025-01-31T09:00:00"), "timestamp"),
        (lambda e: e.update(user_id=""), "user_id"),
        (lambda e: e.update(event_id="not-a-uuid"), "event_id"),
        (lambda e: e.update(extra="field"), "extra"),
        (lambda e: e["payload"].update(task_id=8), "task_id"),
        (lambda e: e["payload"]["task_data"].update(priority="someday"), "priority"),
        (lambda e: e["payload"]["task_data"].pop("title"), "title"),
        (lambda e: e.pop("payload"), "payload"),
    ],
)
def test_invalid_envelopes_are_refused_with_the_reason(change, complaint):
    data = _valid_created()
    change(data)
    with pytest.raises(InvalidEnvelope, match=complaint):
        parse_envelope(json.dumps(data))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"no": "type"}', b"\xff\xfe"])
def test_garbage_is_an_invalid_envelope_not_a_crash(raw):
    with pytest.raises(InvalidEnvelope):
        parse_envelope(raw)


def test_new_event_ids_are_version_7_and_grow_with_time():
    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    assert second.int >> 80 > first.int >> 80  # the millisecond prefix
    assert abs((first.int >> 80) - time.time_ns() // 1_000_000) < 1000
