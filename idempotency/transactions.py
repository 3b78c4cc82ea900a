"""The transaction a keyed write runs in, and the savepoint a service inside it can leave out.

``IdempotencyMiddleware`` runs a keyed request in one transaction with its key and answer, and
rolls all of it back unless the view answers 2xx; between it and the view nothing catches a
service's error to carry on writing (the view turns the error into its answer, and the answer
into the rollback). So a service's block opened directly inside that transaction needs no
savepoint of its own, which would cost two round trips (``SAVEPOINT``, ``RELEASE``) per write.
Inside any other block (a bulk batch's, an MCP batch's, a consumer's, a test's) the caller may
catch the service's error and go on, which only a savepoint makes safe: there it keeps one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

_request_block: ContextVar[transaction.Atomic | None] = ContextVar(
    "idempotency_request_block", default=None
)


@contextmanager
def request_transaction() -> Iterator[None]:
    """The keyed request's transaction (``transaction.atomic()``); the block rolls it back with
    ``transaction.set_rollback(True)`` when the answer is not kept."""
    block = transaction.atomic()
    with block:
        token = _request_block.set(block)
        try:
            yield
        finally:
            _request_block.reset(token)


def service_savepoint() -> bool:
    """The ``savepoint`` of a service's ``transaction.atomic()``: False directly inside a keyed
    request's transaction (an error there rolls the whole request back), True anywhere else."""
    block = _request_block.get()
    if block is None:
        return True
    blocks = transaction.get_connection().atomic_blocks
    return not blocks or blocks[-1] is not block
