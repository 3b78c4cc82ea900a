"""The API's JSON parser reads what DRF's parser reads, and refuses what DRF's parser could not
answer cleanly: bodies nested too deeply, and text that is not Unicode."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from core.parsers import MAX_DEPTH, ApiJSONParser, InvalidJSON, load_json

SAME_AS_DRF = [
    b'{"title": "Caf\\u00e9 \xe2\x98\x95", "tags": ["a", "b"], "n": null, "ok": true}',
    b'{"due": "2031-03-01T10:00:00Z", "x": -1.5e3, "big": 9007199254740993, "e": {}}',
    b'  [1, 2.5, "\\ud83d\\ude00", "\\u2028", "\\"quoted\\""]  ',
    b'"just a string"',
    b'{"version": 100000000000000000000000000001, "low": -18446744073709551617, "f": 1.5}',
    b'{"digits": "12345678901234567890123", "n": 12345678901234567890}',
    b"[-9223372036854775809, 18446744073709551615, 18446744073709551616]",
    b'{"a": 1, "a": 2}',
    b'{"s": "[[[[{{{{' + b"[" * 200 + b'"}',
]


def parse(body: bytes, encoding: str = "utf-8"):
    return ApiJSONParser().parse(io.BytesIO(body), "application/json", {"encoding": encoding})


@pytest.mark.parametrize("body", SAME_AS_DRF)
def test_what_drf_reads_reads_the_same(body):
    expected = JSONParser().parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})

    assert parse(body) == expected


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused():
    deep_list = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    deep_object = b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    for body in (deep_list, deep_object):
        expected = JSONParser().parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})
        assert parse(body) == expected

    for body in [
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
        b"[" * 5000 + b"]" * 5000,
        b"[" * 5000,
    ]:
        with pytest.raises(ParseError) as refused:
            parse(body)
        assert refused.value.get_codes() == "invalid_json"
        assert str(refused.value.detail) == (
            f"The JSON body is nested too deeply (more than {MAX_DEPTH} levels)."
        )


def test_a_deep_body_that_also_holds_a_lone_surrogate_is_refused_for_its_depth():
    body = b"[" * 100 + b'"\\ud800"' + b"]" * 100

    with pytest.raises(ParseError) as refused:
        parse(body)

    assert "nested too deeply" in str(refused.value.detail)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b'{"\\ud800": 1}', None, "A key is not valid Unicode: it holds a lone surrogate (U+D800)."),
        (b'["ok", "\\udc00"]', "[1]", "The text is not valid Unicode: it holds a lone surrogate (U+DC00)."),
        (b'{"a": {"b": ["x", "y\\ud83d"]}}', "a.b[1]", "The text is not valid Unicode: it holds a lone surrogate (U+D83D)."),
        (b'{"a": {"b\\udfff": 1}}', "a", "A key is not valid Unicode: it holds a lone surrogate (U+DFFF)."),
        (b'{"first": "\\ud800", "second": "\\ud801"}', "first", "The text is not valid Unicode: it holds a lone surrogate (U+D800)."),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_validation_error_naming_where_it_is(body, field, message):
    with pytest.raises(ValidationError) as refused:
        parse(body)

    detail = refused.value.detail
    errors = detail[field] if field else detail
    assert [(str(e), e.code) for e in errors] == [(message, "surrogate_characters_not_allowed")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The body is not JSON: "),
        (b"[NaN]", "The body is not JSON: "),
        (b"[1e999]", "The body is not JSON: "),
        (b'["\\u12"]', "The body is not JSON: "),
        (b"\xef\xbb\xbf[1]", "The body is not JSON: "),
        (b'["\xed\xa0\x80"]', "The body is not valid UTF-8: "),
        (b'["\xff"]', "The body is not valid UTF-8: "),
    ],
)
def test_what_is_not_json_is_invalid_json(body, message):
    with pytest.raises(ParseError) as refused:
        parse(body)

    assert refused.value.get_codes() == "invalid_json"
    assert str(refused.value.detail).startswith(message)


def test_a_declared_charset_other_than_utf8_is_honoured():
    assert parse('{"title": "café"}'.encode("latin-1"), "latin-1") == {"title": "café"}
    assert parse('{"title": "☕"}'.encode("utf-16"), "utf-16") == {"title": "☕"}
    with pytest.raises(ParseError) as refused:
        parse('["'.encode("utf-16-le") + b"\x00\xd8" + '"]'.encode("utf-16-le"), "utf-16-le")
    assert str(refused.value.detail) == "The body is not valid utf-16-le."


def test_load_json_reads_what_the_standard_library_reads_up_to_the_depth_limit():
    # given documents outside DRF: a job trigger's body (bytes) and a WebSocket frame (text)
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    # then they read as the standard library reads them, lone surrogates included
    assert load_json(at_limit.encode()) == json.loads(at_limit)
    assert load_json('{"type": "ping", "\\ud800": 1}') == {"type": "ping", "\ud800": 1}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_load_json_refuses_a_document_past_the_depth_limit(depth, as_bytes):
    text = "[" * depth + "]" * depth
    with pytest.raises(InvalidJSON, match="nested too deeply"):
        load_json(text.encode() if as_bytes else text)


@pytest.mark.parametrize("text", ["{not json", b"\xff\xfe", ""])
def test_load_json_refuses_what_is_not_json(text):
    with pytest.raises(InvalidJSON):
        load_json(text)
