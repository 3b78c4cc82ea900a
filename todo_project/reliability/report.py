"""``docs/reliability.md``: hand-written text with generated sections between markers, each
replaced by the command that measures it (``fault_check``, ``loadtest``)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

REPORT = Path(settings.BASE_DIR) / "docs" / "reliability.md"


def write_section(key: str, markdown: str, *, path: Path = REPORT) -> Path:
    text = path.read_text() if path.exists() else "# Reliability\n"
    start, end = f"<!-- reliability:{key} -->", f"<!-- /reliability:{key} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    return path
