"""The user id every app stores: the token's ``sub``, kept as text."""

from __future__ import annotations

# Columns, envelopes and the token check all take their bound from here.
USER_ID_MAX_LENGTH = 128
