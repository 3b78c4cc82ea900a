"""The product's settings plus the ``bench`` app, whose management commands are the benchmarks,
the load test and the fault run. The processes those commands start serve the product, so they
get ``todo_project.settings`` (``bench.benchmarks.server_env``)."""

from todo_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.BenchConfig"]  # noqa: F405
