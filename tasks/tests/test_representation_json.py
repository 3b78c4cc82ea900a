"""Tasks written as JSON by PostgreSQL (``RepresentationJson``: lists, search, the trash, the
change feed) are the representation ``row_to_dict`` gives, and a list page's bytes are the ones
the API sent when it built each page from model rows in Python (``_reference_body``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.http import QueryDict
from rest_framework.renderers import JSONRenderer

from events.selectors import latest_sequence_for_user
from tasks import selectors, services
from tasks.api.params import parse_list_params
from tasks.models import TRASH_RETENTION, Priority, Task
from tasks.representation import REPRESENTATION_FIELDS, iso, row_to_dict
from tasks.search import corrections, marked

pytestmark = pytest.mark.django_db

FUTURE = datetime(2031, 3, 14, 9, 26, 53, tzinfo=UTC)


def _variety(make_task, user_id) -> list[int]:
    """Tasks that exercise every field and every way each one is written."""
    tasks = [
        make_task(title="plain"),
        make_task(title="line\u2028separators\u2029 and control \x01\x1f\x7f"),
        make_task(
            title='Ünïcode "quoted" \\ back\\slash',
            description="line one\nline two\t✓",
            tags=["zürich", "a,b", "emoji 🎉"],
            timezone_name="Asia/Kathmandu",
        ),
        make_task(title="whole second due", due_date="2031-01-01T09:00:00Z"),
        make_task(title="microsecond due", due_date=FUTURE.replace(microsecond=120)),
        make_task(title="bare date due", due_date="2031-02-28", timezone_name="America/New_York"),
        make_task(title="absolute reminder", due_date=FUTURE, reminder_time="2031-03-13T08:00:00Z"),
        make_task(title="recurring", due_date=FUTURE, recurrence_pattern="FREQ=MONTHLY;BYDAY=-1FR"),
        make_task(
            title="repeat from completion",
            due_date=FUTURE,
            recurrence_pattern="daily",
            repeat_from="completion",
        ),
    ]
    for offset in (
        timedelta(0),
        timedelta(seconds=1, microseconds=500_000),
        timedelta(seconds=90),
        timedelta(minutes=30),
        timedelta(minutes=90),
        timedelta(hours=2),
        timedelta(hours=36),
        timedelta(days=1),
        timedelta(days=10),
        timedelta(weeks=1),
        timedelta(weeks=52),
    ):
        tasks.append(make_task(title=f"offset {offset}", due_date=FUTURE, reminder_time=offset))
    for priority in Priority:
        tasks.append(make_task(title=f"priority {priority.label}", priority=priority.label))
    done = make_task(title="done")
    services.task_complete(user_id=user_id, task_id=done.pk)
    skipped = make_task(title="skipped", due_date=FUTURE, recurrence_pattern="weekly")
    services.task_skip(user_id=user_id, task_id=skipped.pk)
    edited = make_task(title="edited")
    services.task_update(user_id=user_id, task_id=edited.pk, changes={"title": "edited twice"})
    return [task.pk for task in tasks] + [done.pk, skipped.pk, edited.pk]


def _reference_representations(user_id: str, task_ids) -> dict[int, dict]:
    """The tasks as ``row_to_dict`` writes them from model rows."""
    rows = Task.objects.filter(user_id=user_id, deleted_at__isnull=True, pk__in=list(task_ids))
    return {row["id"]: row_to_dict(row) for row in rows.values(*REPRESENTATION_FIELDS)}


def test_every_field_is_written_as_row_to_dict_writes_it(make_task, user_id):
    # given tasks with every kind of value
    ids = _variety(make_task, user_id)

    # when the feed's representations are read
    in_bulk = selectors.task_representations_in_bulk(user_id=user_id, task_ids=ids)
    one_by_one = _reference_representations(user_id, ids)

    # then each is the representation, key for key and in the same order
    assert set(in_bulk) == set(ids)
    for task_id in ids:
        assert in_bulk[task_id] == one_by_one[task_id]
        assert list(in_bulk[task_id]) == list(one_by_one[task_id])


def test_whole_second_timestamps_have_no_fraction(make_task, user_id):
    task = make_task(title="whole", due_date="2031-01-01T09:00:00Z")

    found = selectors.task_representations_in_bulk(user_id=user_id, task_ids=[task.pk])

    assert found[task.pk]["due_date"] == "2031-01-01T09:00:00Z"
    assert found[task.pk]["created_at"].endswith("Z")


def test_trashed_and_other_users_tasks_are_not_there(make_task, user_id, other_user_id):
    kept = make_task(title="kept")
    trashed = make_task(title="trashed")
    services.task_delete(user_id=user_id, task_id=trashed.pk)
    theirs = make_task(title="theirs", user_id=other_user_id)

    found = selectors.task_representations_in_bulk(
        user_id=user_id, task_ids={kept.pk, trashed.pk, theirs.pk, 987_654_321}
    )

    assert list(found) == [kept.pk]


def test_no_ids_reads_nothing(user_id, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert selectors.task_representations_in_bulk(user_id=user_id, task_ids=set()) == {}


def test_a_feed_of_a_thousand_changes_carries_each_task(api, rates):
    # given 1,000 tasks created by ten bulk requests
    rates(task_write="10000/min")
    for start in range(0, 1000, 100):
        operations = [{"op": "create", "data": {"title": f"t{start + i}"}} for i in range(100)]
        response = api.post("/api/tasks/bulk/", {"operations": operations}, format="json")
        assert response.status_code == 200

    # when the whole feed is read at once
    body = api.get("/api/changes/", {"since": 0, "limit": 1000}).json()

    # then every change has its task, as the task endpoint shows it
    assert [c["sequence"] for c in body["changes"]] == list(range(1, 1001))
    assert body["has_more"] is False and body["next_since"] == 1000
    last = body["changes"][-1]
    assert last["task"] == api.get(f"/api/tasks/{last['task_id']}/").json()
    assert {c["task"]["title"] for c in body["changes"]} == {f"t{i}" for i in range(1000)}


def _reference_rows(user_id, filters, limit, offset, search):
    matching, search = selectors._matching(user_id=user_id, filters=filters, search=search)
    ordered = selectors._ordered(matching, search, filters)
    marks = ("title_marked", "description_marked") if search and filters.highlight else ()
    rows = list(ordered.values(*REPRESENTATION_FIELDS, *marks)[offset : offset + limit])
    items = [row_to_dict(row) for row in rows]
    for item, row in zip(items, rows, strict=True):
        if marks:
            item["highlight"] = {
                "title": marked(row["title_marked"]),
                "description": marked(row["description_marked"]),
            }
    return items, matching.count(), search


def _reference_body(user_id: str, query: str) -> bytes:
    """``GET /api/tasks/?<query>`` as the API wrote it before PostgreSQL wrote the tasks: model
    rows formatted by ``row_to_dict``, rendered by DRF's own renderer."""
    filters, limit, offset = parse_list_params(QueryDict(query))
    items, total, search = _reference_rows(user_id, filters, limit, offset, None)
    corrected = {}
    if search is not None and not items and not offset:
        corrected = corrections(search)
        if corrected:
            search = search.with_corrections(corrected)
            items, total, _ = _reference_rows(user_id, filters, limit, offset, search)
    body = {
        "count": total,
        "limit": limit,
        "offset": offset,
        "results": items,
        "sequence": latest_sequence_for_user(user_id=user_id),
    }
    if corrected:
        body["corrected"] = corrected
    return JSONRenderer().render(body)


LIST_QUERIES = [
    "",
    "status=pending&ordering=due_date&limit=50",
    "status=completed",
    "status=skipped",
    "ordering=-priority,title&limit=7&offset=3",
    "priority=high,urgent",
    "tags=zürich",
    "due=overdue",
    "q=quoted",
    "q=offset&highlight=true",
    "q=Unicode&highlight=true",
    "q=ofset",
    "q=offset&offset=2&limit=3&highlight=true",
    "q=offset&ordering=-due_date&offset=4&limit=5",
    "q=nothing-like-this",
    # A search's page is its own statement (``search_page_statement``): every order it sorts by
    "q=offset&ordering=title",
    "q=offset&ordering=-priority,due_date&limit=4",
    "q=offset&ordering=status,-updated_at",
    "q=offset&ordering=-relevance&offset=1&limit=2",
    "q=offset&ordering=created_at&status=pending",
    "q=offset&offset=500",
    "offset=500",
    # A page's statement is compiled once per shape and then bound (``core.statements``):
    # every value a filter compares with, and searches with them
    "priority=low&tags=Zürich,emoji 🎉&ordering=title",
    "tags=a,b,zürich&tags_mode=any&status=all&ordering=-due_date",
    "due_before=2031-03-14T09:30:00Z&due_after=2031-01-01T09:00:00Z&ordering=due_date",
    "due=this_month&timezone=Asia/Kathmandu",
    "due=none&priority=urgent,high,low&limit=3&offset=1",
    "q=offset OR priority -urgent&priority=low,high&tags=zürich&tags_mode=any&ordering=title",
    'q="repeat from"&due_before=2031-03-14T09:30:00Z&highlight=true',
]


@pytest.mark.parametrize("query", LIST_QUERIES)
def test_a_list_page_is_the_bytes_the_api_sent_before(
    api, other_api, make_task, user_id, other_user_id, query
):
    # given tasks with every kind of value, and another user's list of the same shape listed
    # first, so that this page's statement is the other's with this user's values bound
    _variety(make_task, user_id)
    _variety(partial(make_task, user_id=other_user_id), other_user_id)
    selectors._LIST_PAGES.clear()
    selectors._SEARCH_PAGES.clear()
    assert other_api.get(f"/api/tasks/?{query}").status_code == 200

    # when a page is listed
    response = api.get(f"/api/tasks/?{query}")

    # then its body is, byte for byte, the page built from model rows in Python
    assert response.status_code == 200, response.content
    assert response.content == _reference_body(user_id, query)
    # and no shape had to be compiled for each request
    shapes = selectors._LIST_PAGES.shapes() | selectors._SEARCH_PAGES.shapes()
    assert shapes and all(shapes.values())


def test_the_trash_is_the_bytes_the_api_sent_before(api, make_task, user_id):
    for task_id in _variety(make_task, user_id)[:6]:
        services.task_delete(user_id=user_id, task_id=task_id)

    response = api.get("/api/tasks/trash/")

    trashed = Task.objects.filter(user_id=user_id, deleted_at__isnull=False)
    items = []
    for row in trashed.order_by("-deleted_at", "-id").values(*REPRESENTATION_FIELDS)[:50]:
        item = row_to_dict(row)
        item["purge_after"] = iso(row["deleted_at"] + TRASH_RETENTION)
        items.append(item)
    body = {"count": len(items), "limit": 50, "offset": 0, "results": items}
    assert response.content == JSONRenderer().render(body)


def test_an_indented_page_holds_the_same_values(api, make_task, user_id):
    _variety(make_task, user_id)

    indented = api.get("/api/tasks/", HTTP_ACCEPT="application/json; indent=2")

    assert b'\n  "count"' in indented.content
    assert indented.json() == api.get("/api/tasks/").json()


def test_one_task_is_the_bytes_the_api_sent_before(api, make_task, user_id):
    # given tasks with every kind of value
    task_ids = _variety(make_task, user_id)
    reference = _reference_representations(user_id, task_ids)

    for task_id in task_ids:
        # when one is read
        response = api.get(f"/api/tasks/{task_id}/")

        # then its body is, byte for byte, the task built from its model row, with its version
        assert response.status_code == 200
        assert response.content == JSONRenderer().render(reference[task_id])
        assert response["ETag"] == f'"{reference[task_id]["version"]}"'


@pytest.mark.parametrize("task_id", ["0", "9223372036854775808", "99999999999999999999999"])
def test_an_id_no_task_can_have_is_a_404(api, task_id):
    response = api.get(f"/api/tasks/{task_id}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
