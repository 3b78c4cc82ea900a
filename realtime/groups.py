"""Who receives what: the one place that maps an event or a socket to a channel-layer group.

A socket joins exactly the group of the user its token names, and an event goes to exactly the
group of ``envelope.user_id``; nothing else decides delivery. Group names must be short ASCII
(letters, digits, ``-_.``), and user ids are arbitrary strings, so the id is hashed.
"""

from __future__ import annotations

import hashlib

GROUP_PREFIX = "user."


def group_for_user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("A user id is a non-empty string.")
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()
    return f"{GROUP_PREFIX}{digest}"


def recipient_group(envelope) -> str:
    """The only group an event is sent to: its own user's."""
    return group_for_user(envelope.user_id)
