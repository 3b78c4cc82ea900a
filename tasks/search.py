"""Turning what a user typed into a PostgreSQL text-search query over every language.

The search vector (``tasks_search_document``, migration 0006) holds each word of a task
accent-free and lower case, its stem in English and in each language the task shows signs of,
and Chinese or Japanese runs as character pairs. A query word is looked up under all of those
forms at once (``tasks_search_term``), so ``cafe`` finds "Café" and ``canciones`` finds
"canción" without knowing either language. Web-search syntax is parsed here, never by
PostgreSQL's own parser, so no input can be a syntax error: ``"exact phrase"``, ``-word``,
``word OR word``. The last plain word is also a prefix, expanded to the user's own words
(``tasks.models.SearchLexeme``) so that the GIN index is asked for a few exact words. A word
that matches nothing can be corrected to the closest word of the user's lexicon
(``corrections``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import BooleanField, Expression, FloatField, TextField

MAX_PREFIX_WORDS = 64
MAX_TERMS = 16
# How far a typo may be from the word it stands for, by the length of what was typed.
MIN_CORRECTED_LENGTH = 3
# How alike (pg_trgm similarity) a word must look to be a correction candidate, and how many of
# the most alike are measured: "meetnig" and "meeting" are 0.33 alike.
CORRECTION_SIMILARITY = 0.2
CORRECTION_CANDIDATES = 50
_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f]"
)
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
START_MARK, STOP_MARK = "\ue000", "\ue001"
_HEADLINE = {
    "title": f"StartSel={START_MARK}, StopSel={STOP_MARK}, HighlightAll=true",
    "description": (
        f"StartSel={START_MARK}, StopSel={STOP_MARK}, MaxFragments=2, MaxWords=18, "
        'MinWords=6, FragmentDelimiter=" … "'
    ),
}


@dataclass(frozen=True)
class Item:
    """A word or a quoted phrase of the query, maybe excluded with ``-``."""

    words: tuple[str, ...]
    negated: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class Search:
    """A parsed query: clauses that must all hold, each one of alternatives (``OR``)."""

    user_id: str | None
    clauses: tuple[tuple[Item, ...], ...]
    corrected: dict[str, str] = field(default_factory=dict)
    # The database whose text search configurations make the words' forms (``_forms``).
    using: str = DEFAULT_DB_ALIAS

    @property
    def prefix_word(self) -> str | None:
        """The last word typed, matched as a prefix too, while it is a plain word."""
        last = self.clauses[-1]
        if len(last) != 1 or last[0].negated or last[0].phrase or self.user_id is None:
            return None
        word = last[0].words[0]
        if len(word) < 2 or not word.isalnum() or _CJK.search(word):
            return None
        return word

    def correctable_words(self) -> list[str]:
        """The words a typo correction may replace: not excluded, not Chinese or Japanese."""
        words = []
        for clause in self.clauses:
            for item in clause:
                if not item.negated:
                    words += [
                        w
                        for w in item.words
                        if len(w) >= MIN_CORRECTED_LENGTH and w.isalpha() and not _CJK.search(w)
                    ]
        return list(dict.fromkeys(words))

    def with_corrections(self, corrected: dict[str, str]) -> Search:
        return replace(self, corrected=corrected)

    # --- SQL ------------------------------------------------------------------------------
    def _term(self, word: str, *, keep_stopwords: bool) -> tuple[str, list]:
        if word in self.corrected:
            # A corrected word is none of the user's words in any form (``corrections``), so
            # only its correction is looked for: asking for both matched the same tasks in the
            # same order, and ranking them against the longer query cost a fifth more.
            return "%s::tsquery", [_forms(self.corrected[word], True, self.using)]
        return "%s::tsquery", [_forms(word, keep_stopwords, self.using)]

    def _item(self, item: Item, *, last: bool) -> tuple[str, list]:
        if item.phrase:
            sql, params = self._term(item.words[0], keep_stopwords=True)
            for word in item.words[1:]:
                more, more_params = self._term(word, keep_stopwords=True)
                sql, params = f"tsquery_phrase({sql}, {more})", params + more_params
        else:
            sql, params = self._term(item.words[0], keep_stopwords=last)
        if last and self.prefix_word is not None:
            sql = f"({sql} || {_PREFIX_EXPANSION})"
            params += [self.user_id, *[self.prefix_word] * 3, MAX_PREFIX_WORDS]
        if item.negated:
            sql = f"(!! {sql})"
        return sql, params

    @cached_property
    def sql(self) -> SearchSQL:
        """The search as the SQL a page's statement is made of, built once per search: the
        statement uses its query in three to five places."""
        parts, params = [], []
        for index, clause in enumerate(self.clauses):
            last = index == len(self.clauses) - 1
            alternatives = []
            for item in clause:
                sql, item_params = self._item(item, last=last and item is clause[-1])
                alternatives.append(sql)
                params += item_params
            parts.append("(" + " || ".join(alternatives) + ")")
        typed = [
            word
            for clause in self.clauses
            for item in clause
            if not item.negated
            for word in item.words
        ]
        # One subquery, which PostgreSQL works out once per statement and place of use; as an
        # expression, each row joined the prefix words to the rest again for each test (a third
        # of a search that matches 1,000 tasks). It also keeps the query's value from the
        # planner, whose guess of how many rows a literal common word matches led it to read
        # all of the user's rows in index order instead of the word's.
        return SearchSQL(
            query="(SELECT " + " && ".join(parts) + ")",
            params=tuple(params),
            typed=" ".join(typed),
            corrected=bool(self.corrected),
        )

    def matches(self) -> _SQL:
        return self.sql.matches()


@dataclass(frozen=True)
class SearchSQL:
    """A search as SQL (``Search.sql``): its query and the query's parameters, the words as
    typed (for the exact-match key), and whether words were corrected. The SQL it writes
    depends on ``shape`` alone and everything the user typed is in ``values``, so that a page's
    statement is compiled once per shape (``core.statements``)."""

    query: str
    params: tuple
    typed: str
    corrected: bool

    @property
    def shape(self) -> tuple:
        return (self.query, len(self.params), self.corrected)

    @property
    def values(self) -> tuple:
        return (*self.params, self.typed)

    @classmethod
    def bound(cls, shape: tuple, values: tuple) -> SearchSQL:
        """The search SQL of ``shape`` with ``values`` (the inverse of ``shape`` and ``values``)."""
        query, count, corrected = shape
        return cls(
            query=query, params=tuple(values[:count]), typed=values[count], corrected=corrected
        )

    def read_from(self, name: str) -> SearchSQL:
        """The same search with its query read from ``name``, a table expression of the
        statement that holds it as ``query``: PostgreSQL then plans the query once, not in
        each of the three to five places a page's statement uses it (0.6-0.9 ms of planning
        a search's page took 0.5)."""
        return replace(self, query=f"(SELECT query FROM {name})", params=())  # noqa: S608

    def matches(self) -> _SQL:
        return _SQL(f"search_vector @@ ({self.query})", [*self.params], output_field=BooleanField())

    def relevance(self) -> _SQL:
        return _SQL(
            f"ts_rank(search_vector, {self.query})", [*self.params], output_field=FloatField()
        )

    def rank_keys(self) -> dict[str, _SQL]:
        """What orders the matches by relevance, first key first: a title match, every word as
        typed, the score. A corrected search has no exact match (the word it replaced is none
        of the user's words in any form), so it is not tested on every row."""
        keys = {"in_title": self.in_title(), "exact": self.exact(), "relevance": self.relevance()}
        if self.corrected:
            del keys["exact"]
        return keys

    def in_title(self) -> _SQL:
        """Whether the title alone (the lexemes of weight A) matches, for ranking title matches
        first: the query with each word restricted to weight A (``'meet':A``, ``'meet':*A``).
        It says what ``ts_rank_cd('{0,0,0,1}', ...) > 0`` said (no row of the benchmark corpus
        differs, over phrases, exclusions, ``OR`` and CJK) and what the vector filtered to its
        title lexemes said (``ts_filter``), without copying every matched row's vector: a
        search tests every row it matches."""
        return _SQL(
            f"search_vector @@ (SELECT regexp_replace(({self.query})::text, %s, %s, 'g')::tsquery)",
            [*self.params, *_TITLE_WEIGHT],
            output_field=BooleanField(),
        )

    def exact(self) -> _SQL:
        """Whether every word matches as typed (only accents and case aside), so that exact
        matches rank above stems, prefixes and corrections."""
        # A subquery, worked out once: as an expression of a parameter, a prepared statement's
        # generic plan parsed the words again for every row it tested.
        return _SQL(
            "search_vector @@ (SELECT plainto_tsquery('tasks_simple', %s))",
            [self.typed],
            output_field=BooleanField(),
        )

    def headline(self, column: str) -> _SQL:
        """``ts_headline`` of ``column`` with the matched words between the marks; every
        lexeme is also a prefix there, so a stem ("steuererklar") marks its whole word."""
        sql, params = self.query, self.params
        marks = f"U&'\\{ord(START_MARK):04X}\\{ord(STOP_MARK):04X}'"
        return _SQL(
            f"ts_headline('tasks_simple', translate({column}, {marks}, ''), "
            f"regexp_replace(({sql})::text, '''((?:[^'']|'''')*)''', '''\\1'':*', 'g')::tsquery, "
            "%s)",
            [*params, _HEADLINE[column]],
            output_field=TextField(),
        )


class _SQL(Expression):
    """SQL made by this module: its text holds only placeholders and constants; everything
    the user typed is in ``params``."""

    def __init__(self, sql: str, params: list, output_field):
        super().__init__(output_field=output_field)
        self.sql, self.params = sql, params

    def as_sql(self, compiler, connection):
        return self.sql, self.params


# A tsquery's words restricted to the title's weight, as a regexp_replace of its text: a word
# is quoted, with its own quotes doubled, and may be a prefix ('meet':* becomes 'meet':*A).
_TITLE_WEIGHT = (r"('(?:[^']|'')*')(?::(\*))?", r"\1:\2A")

# The user's words that start with the typed word, as a tsquery ``'w1' | 'w2' | ...``, each
# quoted with its quotes and backslashes escaped. The range is the index's (byte order: every
# word that starts with the typed one sorts from it to it followed by the last code point); as
# ``LIKE 'word%'`` it was one only where the word was a constant, so the statement had to be
# planned for each search (a prepared statement's generic plan walked the trigram index).
_PREFIX_EXPANSION = (
    "COALESCE((SELECT string_agg('''' || replace(replace(w.lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery "
    "FROM (SELECT lexeme FROM tasks_searchlexeme "
    "WHERE user_id = %s AND lexeme ~>=~ tasks_search_fold(%s) "
    "AND lexeme ~<~ (tasks_search_fold(%s) || U&'\\+10FFFF') "
    "AND starts_with(lexeme, tasks_search_fold(%s)) "
    "ORDER BY length(lexeme), lexeme LIMIT %s) AS w), ''::tsquery)"
)


@lru_cache(maxsize=4096)
def _forms(word: str, keep_stopwords: bool, using: str) -> str:
    """``tasks_search_term(word, keep_stopwords)``: the word's forms in every language, as
    tsquery text. The function is immutable, so it is asked once per process and word; in the
    page's statement the planner worked it out in every place the query is used, 0.35 ms each
    for a one-word search (1.4 ms of planning)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT tasks_search_term(%s, %s)::text", [word, keep_stopwords])
        return cursor.fetchone()[0]


def parse(text: str, *, user_id: str | None, using: str = DEFAULT_DB_ALIAS) -> Search | None:
    """The query in ``text``; None when it holds no word."""
    clauses: list[list[Item]] = []
    pending_or = False
    for match in _TOKEN.finditer(text):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word is not None:
            if word.lower() == "or" and clauses:
                pending_or = True
                continue
            negated = "-" if word.startswith("-") and len(word) > 1 else ""
            word = word.lstrip("-") if negated else word
            item = Item((word,), negated=bool(negated))
        else:
            words = tuple(phrase.split())
            if not words:
                continue
            item = Item(words, negated=bool(negated), phrase=len(words) > 1)
        if pending_or:
            clauses[-1].append(item)
        else:
            clauses.append([item])
        pending_or = False
        if len(clauses) >= MAX_TERMS:
            break
    if not clauses or all(item.negated for clause in clauses for item in clause):
        return None
    return Search(user_id=user_id, clauses=tuple(tuple(clause) for clause in clauses), using=using)


def corrections(search: Search) -> dict[str, str]:
    """For each word of ``search`` that is none of its owner's words in any form, the closest
    word they have (edit distance, at most 1 for short words, 2 up to 8 letters, 3 beyond).

    The trigram index (``search_lexeme_user_trgm``) first picks the user's words that look like
    the typed one (``%`` at ``CORRECTION_SIMILARITY``) and only the ``CORRECTION_CANDIDATES``
    most alike are measured: a user has tens of thousands of words, and measuring them all took
    seconds. So a typo sharing almost no trigram with its word (``cta`` for ``cat``) stays as
    typed."""
    words = search.correctable_words()
    if not words or search.user_id is None:
        return {}
    forms = [_forms(word, True, search.using) for word in words]
    with connections[search.using].cursor() as cursor:
        cursor.execute(
            _CORRECTIONS, [search.user_id, CORRECTION_CANDIDATES, words, forms, search.user_id]
        )
        return {typed: word for typed, word in cursor.fetchall() if word}


def use_correction_similarity(sender, connection, **kwargs) -> None:
    """``connection_created``: how alike a word must look (``%``) to be a correction candidate,
    set once per connection rather than in a transaction around every correction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, false)",
                [str(CORRECTION_SIMILARITY)],
            )


# Each typed word none of whose forms (``_forms``) is a word of the user, with the
# user's closest word within the edit distance its length allows, among the candidates the
# trigram index finds.
_CORRECTIONS = """
    SELECT typed, (
        SELECT c.lexeme FROM (
            SELECT l.lexeme FROM tasks_searchlexeme AS l
            WHERE l.user_id = %s AND l.lexeme %% folded
            ORDER BY l.lexeme <-> folded LIMIT %s) AS c
        WHERE length(c.lexeme) BETWEEN length(folded) - limit_ AND length(folded) + limit_
            AND c.lexeme !~ '^[0-9]'
            AND levenshtein_less_equal(c.lexeme, folded, limit_) <= limit_
        ORDER BY levenshtein_less_equal(c.lexeme, folded, limit_), length(c.lexeme) DESC,
            c.lexeme
        LIMIT 1)
    FROM unnest(%s::text[], %s::tsquery[]) AS w(typed, forms_query),
        LATERAL (SELECT tasks_search_fold(typed) AS folded) AS f,
        LATERAL (SELECT CASE WHEN length(folded) <= 4 THEN 1
                             WHEN length(folded) <= 8 THEN 2 ELSE 3 END AS limit_) AS d,
        LATERAL (SELECT ARRAY(
            SELECT (regexp_matches(querytree(forms_query),
                                   '''((?:[^'']|'''')*)''', 'g'))[1]) AS forms) AS t
    WHERE NOT EXISTS (
        SELECT 1 FROM tasks_searchlexeme AS k
        WHERE k.user_id = %s AND k.lexeme = ANY(t.forms))
"""


def marked(headline: str | None) -> str:
    """A headline as HTML: the text escaped, the matched words in ``<mark>``."""
    escaped = html.escape(headline or "", quote=False)
    return escaped.replace(START_MARK, "<mark>").replace(STOP_MARK, "</mark>")
