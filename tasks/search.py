"""Turning what a user typed into a PostgreSQL text-search query.

Web-search syntax (``"exact phrase"``, ``or``, ``-word``) goes to ``websearch_to_tsquery``.
When the text is plain words, the last one is also matched as a prefix, so ``meet`` finds
"meeting" while typing. The prefix is expanded to the user's own words first (their lexicon,
``tasks.models.SearchLexeme``), so the GIN index is asked for a few exact words instead of
walking every user's words that share the prefix.
"""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchQueryCombinable, SearchQueryField
from django.db.models import Expression

from tasks.models import SEARCH_CONFIG

MAX_PREFIX_WORDS = 64

# Endings that English stemming removes. A word typed past a stem by the start of one of these
# ("meeti" past "meet" of "meeting") also matches the stem itself.
_STEM_ENDINGS = (
    "ing", "ings", "ed", "er", "ers", "es", "ies", "ied", "ly", "ily", "ment", "ments", "ness",
    "ion", "ions", "ation", "ations", "al", "ally", "ity", "ities", "ive", "ize", "ise", "ful",
    "able", "s", "y",
)  # fmt: skip


def stems_typed_past(word: str) -> list[str]:
    stems = []
    for cut in range(len(word) - 1, max(2, len(word) - 4) - 1, -1):
        rest = word[cut:]
        if rest[0] == word[cut - 1] and len(rest) > 1:
            rest = rest[1:]  # doubled consonant: "runn" past "run" of "running"
        if any(ending.startswith(rest) for ending in _STEM_ENDINGS):
            stems.append(word[:cut])
    return stems


class UserPrefixQuery(SearchQueryCombinable, Expression):
    """The user's words that start with ``word`` (or that ``word`` runs past), as a tsquery
    ``'w1' | 'w2' | ...``; empty when there are none. ``word`` is alphanumeric."""

    output_field = SearchQueryField()
    contains_aggregate = False

    def __init__(self, user_id: str, word: str):
        super().__init__()
        self.user_id = user_id
        self.word = word

    def as_sql(self, compiler, connection):
        sql = (
            "COALESCE((SELECT to_tsquery('simple', string_agg(quote_literal(w.lexeme), ' | ')) "
            "FROM (SELECT lexeme FROM tasks_searchlexeme "
            "WHERE user_id = %s AND (lexeme LIKE %s OR lexeme = ANY(%s)) "
            "AND strpos(lexeme, chr(92)) = 0 "
            "ORDER BY length(lexeme), lexeme LIMIT %s) AS w), ''::tsquery)"
        )
        return sql, [self.user_id, f"{self.word}%", stems_typed_past(self.word), MAX_PREFIX_WORDS]


def build_search_query(text: str, *, user_id: str):
    text = text.strip()
    if not text:
        return None
    tokens = text.split()
    uses_operators = '"' in text or any(t.startswith("-") or t.lower() == "or" for t in tokens)
    last = tokens[-1]
    if uses_operators or not last.isalnum() or len(last) < 2:
        return SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)
    word = last.lower()
    # The whole word as English stems it ("happy" is stored as "happi"), or a prefix of words.
    as_typed = SearchQuery(word, search_type="plain", config=SEARCH_CONFIG) | UserPrefixQuery(
        user_id, word
    )
    head = " ".join(tokens[:-1])
    if head:
        return SearchQuery(head, search_type="websearch", config=SEARCH_CONFIG) & as_typed
    return as_typed
