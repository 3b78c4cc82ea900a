"""Proof that nothing is lost or applied twice: the invariants of the write path and its
consumers (``invariants``), the processes a fault run kills and restarts (``processes``), and the
report they write (``docs/reliability.md``)."""
