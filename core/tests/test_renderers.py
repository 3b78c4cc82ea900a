"""The orjson renderer writes the same bytes as DRF's JSON renderer."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from core.renderers import FastJSONRenderer

SAMPLES = [
    {"count": 2, "results": [{"id": 1, "title": "Café ☕ «plan»", "tags": ["a", "b"]}]},
    {"when": datetime(2026, 1, 31, 9, 0, 0, 500, tzinfo=UTC), "day": date(2026, 2, 28)},
    {"span": timedelta(hours=1), "amount": Decimal("1.50"), "id": uuid.UUID(int=7)},
    {"message": gettext_lazy("This field is required."), 3: "int key", "none": None},
    ReturnDict(
        {"error": {"fields": ReturnList([{"field": "title"}], serializer=None)}}, serializer=None
    ),
    [1, 2.5, True, False, "</script>", "\u2028", "\u2029 end"],
    # Other characters whose UTF-8 starts with 0xE2, before and after a separator.
    ["curly \u2019quotes\u2019 \u2014 \u2026", "both \u2029\u2028 twice \u2028 end \u2026"],
    ["\u20ac at the end \u2026"],
]


def test_same_bytes_as_drf():
    for data in SAMPLES:
        assert FastJSONRenderer().render(data) == JSONRenderer().render(data), data


def test_nothing_renders_as_an_empty_body():
    assert FastJSONRenderer().render(None) == b""


def test_an_indent_asked_for_is_honoured():
    rendered = FastJSONRenderer().render({"a": [1]}, "application/json; indent=2", {})
    assert rendered == JSONRenderer().render({"a": [1]}, "application/json; indent=2", {})
    assert b"\n" in rendered
