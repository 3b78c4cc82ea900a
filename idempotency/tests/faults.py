"""A fault hook for tests only: installed by ``fault_settings``, never by the product."""

from __future__ import annotations

import os
import time
from pathlib import Path


class PauseAfterCommit:
    """Sits just outside ``IdempotencyMiddleware``: when a keyed write has committed and its
    answer is on its way out, write the marker file named by ``FAULT_MARKER`` and hold the
    answer, so the test can kill the server between the commit and the answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        marker = os.environ.get("FAULT_MARKER")
        if marker and request.headers.get("Idempotency-Key") and response.status_code < 300:
            Path(marker).write_text(str(response.status_code))
            time.sleep(120)
        return response
