"""Container health check: exit 0 when the process in this container answers /healthz.

The web process listens on PORT (8000); every other process (relay, consumers,
reminder scheduler) serves /healthz on METRICS_PORT (9000). One image runs all of
them, so the check asks both and succeeds when either answers 200. Standard library
only: the slim runtime image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def _ok(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    ports = [os.environ.get("PORT", "8000"), os.environ.get("METRICS_PORT", "9000")]
    return 0 if any(_ok(port) for port in dict.fromkeys(ports)) else 1


if __name__ == "__main__":
    sys.exit(main())
