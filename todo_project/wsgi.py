import os

from django.core.wsgi import get_wsgi_application

from core.embedded_postgres import ensure_running

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

ensure_running()
application = get_wsgi_application()
