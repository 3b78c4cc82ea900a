"""Tooling outside the product: the benchmarks, the load test, the fault run with its
invariants, the query corpus, the events bench writer and an in-process Dapr sidecar.

The wheel does not install this package and no product module imports it. Its management
commands exist only under ``bench.settings`` (``make bench*`` sets it); tests import its helpers.
"""
