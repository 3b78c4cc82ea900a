"""The user id every app stores: the token's ``sub``, kept as text."""

from __future__ import annotations

import re

# Columns, envelopes and the token check all take their bound from here.
USER_ID_MAX_LENGTH = 128
# Control characters and lone surrogates: nothing a person types, and PostgreSQL stores no NUL.
_NOT_IN_A_USER_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_user_id(value: object) -> bool:
    """Whether ``value`` can be a user id (a token's ``sub``)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= USER_ID_MAX_LENGTH
        and not _NOT_IN_A_USER_ID.search(value)
    )
