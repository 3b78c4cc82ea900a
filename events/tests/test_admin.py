"""The event pipeline's admin pages through Django's test client as a staff user: dead letters
(read-only, with their replay action), the outbox and the consumer cursors."""

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages

from events.models import DeadLetter, OutboxEvent
from events.schemas import parse_envelope
from events.services import dead_letter_record
from tasks.models import TaskHistory

pytestmark = pytest.mark.django_db

LETTERS = "/admin/events/deadletter/"


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def audit_letter(user_id: str, make_task) -> DeadLetter:
    """A dead letter of the audit consumer holding a real task.created envelope."""
    task = make_task(title="lost and found")
    row = OutboxEvent.objects.get(user_id=user_id, event_type="task.created")
    TaskHistory.objects.filter(task_id=task.pk).delete()
    return dead_letter_record(
        consumer="audit",
        topic="task-events",
        envelope=parse_envelope(row.envelope),
        error="Traceback ...\nRuntimeError: the history table was locked",
        attempts=5,
    )


def test_dead_letters_are_listed_with_their_last_error_line(staff_client, user_id, make_task):
    audit_letter(user_id, make_task)
    response = staff_client.get(LETTERS, {"state": "pending"})
    assert response.status_code == 200
    assert b"RuntimeError: the history table was locked" in response.content
    assert b"Traceback ..." not in response.content


def test_a_dead_letter_reads_but_does_not_edit(staff_client, user_id, make_task):
    letter = audit_letter(user_id, make_task)
    page = staff_client.get(f"{LETTERS}{letter.pk}/change/")
    assert page.status_code == 200
    assert b"lost and found" in page.content and b'name="_save"' not in page.content
    assert staff_client.get(f"{LETTERS}add/").status_code == 403


def test_replay_applies_the_letter_and_says_so(staff_client, user_id, make_task):
    letter = audit_letter(user_id, make_task)
    response = staff_client.post(
        LETTERS, {"action": "replay", "_selected_action": [letter.pk]}, follow=True
    )
    assert response.status_code == 200
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert said == [f"Dead letter {letter.pk} replayed: applied."]
    letter.refresh_from_db()
    assert letter.replayed_at is not None and letter.replay_count == 1
    assert TaskHistory.objects.filter(user_id=user_id, event_type="task.created").count() == 1


def test_the_outbox_and_the_cursors_are_read_only_lists(staff_client, user_id, make_task):
    make_task(title="recorded")
    response = staff_client.get("/admin/events/outboxevent/", {"q": user_id})
    assert response.status_code == 200 and b"task.created" in response.content
    row = OutboxEvent.objects.get(user_id=user_id)
    assert staff_client.get(f"/admin/events/outboxevent/{row.pk}/delete/").status_code == 403
    assert staff_client.get("/admin/events/consumercursor/").status_code == 200
