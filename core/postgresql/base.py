"""Django's PostgreSQL backend, with a connection health check that costs no round trip.

A thread keeps its connection between requests (``CONN_MAX_AGE``), and ``CONN_HEALTH_CHECKS``
has Django make sure before a request's first query that the connection still works, so that
a server restart costs no request an error. Django's check sends ``SELECT 1``: a round trip
before every request that reads the database, about a tenth of what a list page costs the
server. Between requests a connection is idle and the server sends nothing on it unasked, so
whether it still works can be seen on its socket: a connection the server has closed (a
restart, a terminated backend, ``idle_session_timeout``) has its end, or the server's last
message, waiting to be read. Anything to read is taken as a broken connection, which is
closed and opened again; a connection inside a transaction is asked as Django asks it.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
