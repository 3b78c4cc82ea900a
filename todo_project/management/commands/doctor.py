"""``manage.py doctor``: one line per dependency of this deployment, OK or FAIL with its fix;
a non-zero exit status when something fails."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from todo_project.doctor import FAIL, render, run_checks


class Command(BaseCommand):
    help = (
        "Check the database and migrations, Redis, the Dapr sidecar and its components, the "
        "secrets and the consumers' lag; exit non-zero if anything fails."
    )
    requires_system_checks = []  # a broken setting is what this command is for
    requires_migrations_checks = False

    def handle(self, *args, **options):
        findings = run_checks()
        for line in render(findings):
            self.stdout.write(line)
        failed = [finding.check for finding in findings if finding.status == FAIL]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS("Everything this deployment needs is in order."))
