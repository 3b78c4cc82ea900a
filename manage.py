#!/usr/bin/env python
import os
import sys

# Commands that never open a database connection, so they do not start the embedded server
# (``serve`` starts it itself, once it knows its port is free).
NO_DATABASE_COMMANDS = {"help", "version", "--help", "-h", "--version", "issue_token", "serve"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
    from django.core.management import execute_from_command_line

    if len(sys.argv) > 1 and sys.argv[1] not in NO_DATABASE_COMMANDS:
        from core.embedded_postgres import ensure_running

        ensure_running()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
