"""Search, filters, ordering and pagination against hand-computed expectations."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tasks import selectors, services
from tasks.selectors import TaskFilters, _due_bounds

pytestmark = pytest.mark.django_db

LIST = "/api/tasks/"


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [task["title"] for task in response.json()["results"]]


@pytest.fixture
def corpus(make_task, user_id, other_user_id):
    now = timezone.now()
    tasks = {
        "meeting": make_task(
            title="Team meeting notes",
            description="agenda",
            tags=["Work"],
            priority="high",
            due_date=now + timedelta(days=1),
        ),
        "groceries": make_task(
            title="Buy groceries",
            description="milk and eggs for the meeting",
            tags=["home", "errand"],
            priority="low",
            due_date=now + timedelta(hours=3),
        ),
        "report": make_task(
            title="Quarterly report",
            description="finance numbers",
            tags=["work", "finance"],
            priority="urgent",
            due_date=now - timedelta(days=2),
        ),
        "dentist": make_task(title="Dentist", tags=["health"], priority="medium"),
        "meet_bob": make_task(
            title="Meet Bob",
            description="coffee",
            tags=["social"],
            priority="high",
            due_date=now + timedelta(days=10),
        ),
    }
    services.task_complete(user_id=user_id, task_id=tasks["dentist"].pk)
    # Another user's tasks must never show up.
    make_task(user_id=other_user_id, title="Team meeting of the other user", tags=["work"])
    return tasks


def test_search_ranks_title_matches_above_description_matches(api, corpus):
    # Title matches first, the word as typed above its stem ("Meet"), then the description.
    assert titles(api.get(LIST, {"q": "meeting"})) == [
        "Team meeting notes",
        "Meet Bob",
        "Buy groceries",
    ]


def test_word_prefix_matches_while_typing(api, corpus):
    assert set(titles(api.get(LIST, {"q": "quart"}))) == {"Quarterly report"}
    assert set(titles(api.get(LIST, {"q": "grocer"}))) == {"Buy groceries"}
    assert set(titles(api.get(LIST, {"q": "finan"}))) == {"Quarterly report"}
    # typed past the stem: "meeting" is stored as "meet", "quarterly" as "quarter"
    assert set(titles(api.get(LIST, {"q": "meeti"}))) == {
        "Team meeting notes",
        "Meet Bob",
        "Buy groceries",
    }
    assert set(titles(api.get(LIST, {"q": "quarterl"}))) == {"Quarterly report"}
    assert set(titles(api.get(LIST, {"q": "team meetin"}))) == {"Team meeting notes"}
    # a complete word is not widened to a shorter unrelated one
    assert titles(api.get(LIST, {"q": "notes"})) == ["Team meeting notes"]


def test_websearch_syntax_phrases_or_and_negation(api, corpus):
    assert titles(api.get(LIST, {"q": '"quarterly report"'})) == ["Quarterly report"]
    assert set(titles(api.get(LIST, {"q": "dentist or coffee"}))) == {"Dentist", "Meet Bob"}
    assert set(titles(api.get(LIST, {"q": "meeting -milk"}))) == {"Team meeting notes", "Meet Bob"}


def test_tags_are_searchable(api, corpus):
    assert titles(api.get(LIST, {"q": "errand"})) == ["Buy groceries"]


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE tasks_task; --",
        "meeting' OR '1'='1",
        "a & b | !c",
        "foo:* <-> bar",
        "((((",
        "\\",
        "!!!",
        "meet:*",
        "' UNION SELECT * FROM auth_user --",
    ],
)
def test_sql_and_tsquery_syntax_in_search_are_plain_text(api, corpus, text):
    response = api.get(LIST, {"q": text})
    assert response.status_code == 200
    assert all("other user" not in t for t in titles(response))


def test_search_with_nul_byte_is_a_400(api, corpus):
    assert api.get(LIST, {"q": "a\x00b"}).status_code == 400


def test_status_priority_and_tag_filters(api, corpus):
    assert titles(api.get(LIST, {"status": "completed"})) == ["Dentist"]
    assert set(titles(api.get(LIST, {"status": "pending", "priority": "high"}))) == {
        "Team meeting notes",
        "Meet Bob",
    }
    assert set(titles(api.get(LIST, {"priority": "low,urgent"}))) == {
        "Buy groceries",
        "Quarterly report",
    }
    assert set(titles(api.get(LIST, {"priority": ["low", "urgent"]}))) == {
        "Buy groceries",
        "Quarterly report",
    }
    # tags ignore case; "all" needs every tag, "any" one of them
    assert set(titles(api.get(LIST, {"tags": "WORK"}))) == {
        "Team meeting notes",
        "Quarterly report",
    }
    assert titles(api.get(LIST, {"tags": "work,finance"})) == ["Quarterly report"]
    assert set(titles(api.get(LIST, {"tags": "finance,home", "tags_mode": "any"}))) == {
        "Quarterly report",
        "Buy groceries",
    }


def test_due_filters(api, corpus):
    assert titles(api.get(LIST, {"due": "overdue"})) == ["Quarterly report"]
    assert titles(api.get(LIST, {"due": "none"})) == ["Dentist"]
    now = timezone.now()
    before = (now + timedelta(days=2)).isoformat()
    assert set(titles(api.get(LIST, {"due_before": before, "due_after": now.isoformat()}))) == {
        "Team meeting notes",
        "Buy groceries",
    }


def test_due_windows_are_local_days_weeks_and_months():
    # Wednesday 2026-03-04 23:30 UTC is already Thursday 2026-03-05 in Tokyo.
    now = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    assert _due_bounds("today", "Asia/Tokyo", now) == (
        datetime(2026, 3, 4, 15, 0, tzinfo=UTC),
        datetime(2026, 3, 5, 15, 0, tzinfo=UTC),
    )
    assert _due_bounds("this_week", "Asia/Tokyo", now) == (
        datetime(2026, 3, 1, 15, 0, tzinfo=UTC),  # Monday 2 March, Tokyo
        datetime(2026, 3, 8, 15, 0, tzinfo=UTC),
    )
    # 23:30 UTC on 31 March is 00:30 BST on 1 April: April in London, DST included.
    assert _due_bounds(
        "this_month", "Europe/London", datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    ) == (datetime(2026, 3, 31, 23, 0, tzinfo=UTC), datetime(2026, 4, 30, 23, 0, tzinfo=UTC))


def test_orderings_put_nulls_last_and_break_ties_by_id(api, corpus):
    assert titles(api.get(LIST, {"ordering": "due_date"})) == [
        "Quarterly report",
        "Buy groceries",
        "Team meeting notes",
        "Meet Bob",
        "Dentist",
    ]
    assert titles(api.get(LIST, {"ordering": "-due_date"}))[-1] == "Dentist"
    assert titles(api.get(LIST, {"ordering": "-priority"})) == [
        "Quarterly report",
        "Meet Bob",
        "Team meeting notes",
        "Dentist",
        "Buy groceries",
    ]
    assert titles(api.get(LIST, {"ordering": "title"})) == sorted(
        ["Quarterly report", "Meet Bob", "Team meeting notes", "Dentist", "Buy groceries"]
    )
    assert titles(api.get(LIST)) == [
        "Meet Bob",
        "Dentist",
        "Quarterly report",
        "Buy groceries",
        "Team meeting notes",
    ]


def test_relevance_ordering_needs_a_search(api, corpus):
    response = api.get(LIST, {"ordering": "relevance"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "ordering"


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"priority": "critical"},
        {"tags_mode": "some"},
        {"due": "yesterday"},
        {"ordering": "colour"},
        {"limit": 101},
        {"limit": 0},
        {"offset": -1},
        {"due_before": "not a date"},
        {"timezone": "Mars/Base"},
        {"colour": "red"},
    ],
)
def test_bad_query_parameters_are_400(api, corpus, params):
    response = api.get(LIST, params)
    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]["field"]
    assert field == next(iter(params)) or field.startswith(f"{next(iter(params))}[")


def test_pagination_is_stable_and_counts_everything(api, make_task):
    for i in range(23):
        make_task(title=f"task {i:02d}", priority="medium")
    seen = []
    for offset in (0, 10, 20):
        body = api.get(LIST, {"ordering": "priority", "limit": 10, "offset": offset}).json()
        assert body["count"] == 23
        seen += [t["id"] for t in body["results"]]
    assert len(seen) == len(set(seen)) == 23
    assert api.get(LIST, {"limit": 10, "offset": 30}).json() == {
        "count": 23,
        "limit": 10,
        "offset": 30,
        "results": [],
        "sequence": 23,
    }


def test_a_page_and_its_total_are_one_query(django_assert_num_queries, make_task, user_id):
    for i in range(30):
        make_task(title=f"t{i}", tags=["a", "b"])
    with django_assert_num_queries(1):
        page = selectors.task_list_for_user(user_id=user_id, filters=TaskFilters(), limit=10)
    assert (page.total, len(page.items)) == (30, 10)
    with django_assert_num_queries(1):
        page = selectors.task_list_for_user(
            user_id=user_id, filters=TaskFilters(status="pending", ordering=("title",)), limit=10
        )
    assert page.total == 30
    assert [item["title"] for item in page.items] == sorted(f"t{i}" for i in range(30))[:10]


def test_the_total_counts_only_what_matches(make_task, user_id, other_user_id):
    for i in range(12):
        make_task(title=f"report {i}", priority="high" if i % 3 == 0 else "low")
    make_task(title="report of someone else", user_id=other_user_id)
    high = TaskFilters(q="report", priorities=("high",))
    assert selectors.task_list_for_user(user_id=user_id, filters=high, limit=2).total == 4
    assert selectors.task_list_for_user(user_id=user_id, filters=high, offset=3).total == 4
    past_the_end = selectors.task_list_for_user(user_id=user_id, filters=high, offset=4)
    assert (past_the_end.total, past_the_end.items) == (4, [])
    nothing = selectors.task_list_for_user(user_id=user_id, filters=TaskFilters(q="zebra"))
    assert (nothing.total, nothing.items) == (0, [])


def test_each_users_words_are_kept_in_their_lexicon(make_task, user_id, other_user_id):
    from tasks.models import SearchLexeme

    task = make_task(title="Happy birthday", tags=["party"])
    services.task_update(user_id=user_id, task_id=task.pk, changes={"description": "balloons"})
    words = set(SearchLexeme.objects.filter(user_id=user_id).values_list("lexeme", flat=True))
    assert {"happi", "birthday", "parti", "balloon"} <= words
    assert not SearchLexeme.objects.filter(user_id=other_user_id).exists()


def test_whole_words_match_through_their_stem_and_prefixes_only_the_users_words(
    api, make_task, other_user_id
):
    make_task(title="Happy hour")
    make_task(user_id=other_user_id, title="Hapless hippo")
    assert titles(api.get(LIST, {"q": "happy"})) == ["Happy hour"]
    assert titles(api.get(LIST, {"q": "hap"})) == ["Happy hour"]
    assert titles(api.get(LIST, {"q": "hapl"})) == []
