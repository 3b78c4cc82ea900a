"""The embedded mode's channel layer.

Channels' ``InMemoryChannelLayer`` sweeps every channel and every group membership for expired
entries on each ``send``, ``receive`` and ``group_send``. With a thousand sockets that sweep is
~2,000 steps, taken some twenty times per event (once per receiving socket), and the server's
event loop spent its time sweeping instead of sending frames. This subclass sweeps at most once
a second, which keeps expiry (a consumer that stopped reading still leaves its groups) at a cost
independent of the event rate, and sends a group's messages without a task per member.
"""

from __future__ import annotations

import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    SWEEP_INTERVAL_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at < self.SWEEP_INTERVAL_SECONDS:
            return
        self._swept_at = now
        super()._clean_expired()

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        # ``send`` only puts into a queue (it never waits), so one pass keeps every member's
        # messages in the order they were sent.
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
