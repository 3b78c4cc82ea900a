"""Synthetic but realistic task text for the query benchmarks: Zipf-distributed words over a
vocabulary of common task words followed by a long tail of rarer made-up words, and one task in
two written in German, Spanish, French, Portuguese or Chinese."""

from __future__ import annotations

import bisect
import enum
import itertools
import json
import random
from datetime import datetime, timedelta

COMMON_WORDS = """
meeting report review email call plan project team client budget design update weekly
schedule order invoice payment draft proposal presentation deadline follow check prepare
send book fix test deploy release write read clean buy groceries doctor dentist appointment
birthday gift party trip travel flight hotel ticket car service insurance tax return bank
account password backup server database migration bug feature customer support ticket
sprint retro standup interview hire onboarding training course lesson homework exam study
gym workout run yoga swim garden laundry dishes kitchen repair plumber electrician rent
mortgage bills subscription renew cancel contract sign document scan print mail package
pickup delivery return store market coffee lunch dinner breakfast recipe cook bake family
friend mother father kids school teacher parent note idea research article blog post video
podcast record edit publish marketing campaign sales lead pipeline quarterly annual goal
metrics dashboard analytics survey feedback roadmap strategy vendor supplier inventory
shipping warehouse audit compliance security policy legal review renewal license hardware
laptop phone charger monitor keyboard update install configure network wifi router printer
""".split()  # noqa: SIM905  (a word list reads best as text)

TAGS = """work home personal errand finance health family urgent someday waiting
shopping travel admin learning fitness project-x project-y client-a client-b ops
""".split()  # noqa: SIM905

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "ta",
    "vo",
    "shi",
    "zen",
    "por",
    "qua",
    "bel",
    "dor",
    "fin",
    "gal",
]


def vocabulary(size: int = 6000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class ZipfWords:
    def __init__(self, words: list[str], exponent: float = 1.05, seed: int = 11):
        self.words = words
        weights = [1 / (rank**exponent) for rank in range(1, len(words) + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        self.rng = random.Random(seed)

    def sample(self, count: int) -> list[str]:
        total = self.cumulative[-1]
        return [
            self.words[bisect.bisect_left(self.cumulative, self.rng.random() * total)]
            for _ in range(count)
        ]


# Tasks in other languages, one in two: their words as people write them (accents, compounds,
# inflections) and Chinese titles without spaces.
_FOREIGN_TEXT = {
    "de": (
        "Steuererklärung abgeben Finanzamt Übersicht Ausgaben Straße fegen Geburtstagsgeschenk "
        "für Oma kaufen Wohnungsbesichtigung Unterlagen mitnehmen Arzttermin vereinbaren "
        "Rechnungen bezahlen Einkäufe erledigen Besprechung vorbereiten Küche aufräumen"
    ),
    "es": (
        "Llamar a la abuela canción fiesta Málaga reunión con el cliente preparar presentación "
        "médico análisis viaje Sevilla hoteles trenes vacaciones pagar facturas comprar pan "
        "canciones reuniones revisión"
    ),
    "fr": (
        "Rendez-vous médecin carte vitale faire les courses acheter légumes payer factures "
        "électricité réunion équipe préparer rapport trimestriel anniversaire cadeau réparer"
    ),
    "pt": (
        "Reunião com o cliente preparar apresentação orçamento pagar contas luz vencimento "
        "próxima semana devolver livros biblioteca três atrasados médico consulta"
    ),
}
FOREIGN = {language: text.split() for language, text in _FOREIGN_TEXT.items()}
_CHINESE_TEXT = "会议 记录 周一 周报 旅行 计划 预订 酒店 机票 报销 发票 整理 项目 客户 上海 北京"
CHINESE = _CHINESE_TEXT.split()


def _foreign_text(rng: random.Random, language: str, count: int) -> str:
    if language == "zh":
        return "".join(rng.choice(CHINESE) for _ in range(count))
    return " ".join(rng.choice(FOREIGN[language]) for _ in range(count))


# The columns of ``task_rows``, in its order.
CORPUS_COLUMNS = (
    "user_id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "tags",
    "due_at",
    "created_at",
    "updated_at",
)


def copy_layout() -> tuple[str, tuple]:
    """The columns a COPY of ``task_rows`` fills, as SQL, and the values that follow each
    row's: every NOT NULL column of the task model the corpus does not give, with the model's
    default, so a column added with a default needs nothing here. Nullable columns are left to
    the database (NULL, or its trigger)."""
    from django.db.models import JSONField

    from tasks.models import Task

    columns, defaults = list(CORPUS_COLUMNS), []
    for field in Task._meta.concrete_fields:
        if field.column in CORPUS_COLUMNS or field.primary_key or field.generated or field.null:
            continue
        if not field.has_default():
            raise ValueError(
                f"tasks_task.{field.column} is NOT NULL without a default: give the bench "
                "corpus a value for it."
            )
        value = field.get_default()
        if isinstance(value, enum.Enum):  # a model's choices: COPY takes the stored value
            value = value.value
        columns.append(field.column)
        defaults.append(json.dumps(value) if isinstance(field, JSONField) else value)
    return ", ".join(columns), tuple(defaults)


def task_rows(user_ids: list[str], per_user: int, now: datetime, seed: int = 3):
    """Yield rows for COPY, their columns ``CORPUS_COLUMNS``; ``copy_layout`` gives the
    rest."""
    import json

    rng = random.Random(seed)
    words = ZipfWords(vocabulary())
    for user_id in user_ids:
        for _ in range(per_user):
            language = rng.choice(("en", "en", "en", "en", "en", "de", "es", "fr", "pt", "zh"))
            if language == "en":
                title = " ".join(words.sample(rng.randint(2, 7))).capitalize()
                description = (
                    " ".join(words.sample(rng.randint(0, 25))) if rng.random() < 0.6 else ""
                )
            else:
                title = _foreign_text(rng, language, rng.randint(2, 5))
                description = (
                    _foreign_text(rng, language, rng.randint(3, 12)) if rng.random() < 0.6 else ""
                )
            tags = rng.sample(TAGS, rng.choice((0, 1, 1, 2, 2, 3)))
            completed = rng.random() < 1 / 3
            created = now - timedelta(days=rng.uniform(0, 365))
            due = now + timedelta(days=rng.uniform(-30, 60)) if rng.random() < 0.7 else None
            priority = rng.choices((1, 2, 3, 4), weights=(3, 5, 3, 1))[0]
            yield (
                user_id,
                title[:200],
                description[:2000],
                completed,
                created + timedelta(days=1) if completed else None,
                priority,
                json.dumps(tags),
                due,
                created,
                created,
            )
