"""Long-running processes freeze the heap they start with, so full collections stay short."""

import gc
import os
import subprocess
import sys
import threading

from django.conf import settings

from events.worker_process import run_until_signalled


def test_the_asgi_application_freezes_the_heap_it_starts_with():
    result = subprocess.run(
        [sys.executable, "-c", "import gc, todo_project.asgi; print(gc.get_freeze_count())"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "todo_project.settings"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # Django, the apps and their libraries: tens of thousands of objects
    assert int(result.stdout.split()[-1]) > 20_000


def test_a_worker_process_freezes_its_heap_before_the_worker_runs():
    class Worker:
        healthy = threading.Event()
        frozen = 0

        def run(self):
            Worker.frozen = gc.get_freeze_count()

        def stop(self):
            pass

    gc.unfreeze()
    try:
        run_until_signalled(Worker(), name="test-worker", metrics_port=0, listen=False)
    finally:
        gc.unfreeze()
    assert Worker.frozen > 20_000
