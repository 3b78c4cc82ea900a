"""The embedded broker: the outbox table is the log.

Publishing gives each row the next log position while the relay holds the log head's row lock,
so one relay transaction's positions all commit before the next relay can take any: positions
become visible in increasing order, and a consumer cursor on ``position`` never steps past a row
that commits later. (A cursor on the outbox ``id`` could: ids are taken before commit, so a row
with a lower id can commit after one with a higher id.)
"""

from __future__ import annotations

import uuid

from django.db import connection

from events import wakeup
from events.brokers import OutboxRow


class EmbeddedBroker:
    name = "embedded"
    # Publishing sets ``sent_at`` with the position (one update per row, not two); it never
    # refuses a row, and consumers read the envelopes from the table, so the relay need not.
    marks_sent = True
    publishes_envelopes = False

    def publish(self, rows: list[OutboxRow]) -> set[uuid.UUID]:
        self._assign_positions(rows)
        return set()

    def _assign_positions(self, rows: list[OutboxRow]) -> None:
        with connection.cursor() as cursor:
            # Moving the head locks it until the relay's transaction ends.
            cursor.execute(
                """
                WITH head AS (
                    UPDATE events_eventloghead SET last_position = last_position + %(count)s
                    WHERE id = 1 RETURNING last_position - %(count)s AS first
                )
                UPDATE events_outboxevent AS o
                SET position = head.first + n.ordinality, sent_at = now()
                FROM head, unnest(%(ids)s::bigint[]) WITH ORDINALITY AS n(id, ordinality)
                WHERE o.id = n.id
                """,
                {"count": len(rows), "ids": [row.id for row in rows]},
            )
            if cursor.rowcount == 0:  # no head row yet
                self._create_head(cursor)
                self._assign_positions(rows)

    @staticmethod
    def _create_head(cursor) -> None:
        cursor.execute(
            "INSERT INTO events_eventloghead (id, last_position) "
            "SELECT 1, coalesce(max(position), 0) FROM events_outboxevent "
            "ON CONFLICT (id) DO NOTHING"
        )

    def after_commit(self, rows: list[OutboxRow]) -> None:
        wakeup.announce(wakeup.PUBLISHED)

    def close(self) -> None:
        pass
