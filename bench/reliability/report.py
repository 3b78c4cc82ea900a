"""``docs/reliability.md``: hand-written text with generated sections between markers, each
replaced by the command that measures it (``fault_check``, ``loadtest``)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from bench.benchmarks import write_marked_section

REPORT = Path(settings.BASE_DIR) / "docs" / "reliability.md"


def write_section(key: str, markdown: str) -> Path:
    """Replace (or append) the section ``key`` of docs/reliability.md."""
    return write_marked_section(REPORT, f"reliability:{key}", markdown, header="# Reliability\n")
