"""Checks of the Prometheus rules (deploy/prometheus/alerts.yaml) and their runbooks.

- Prometheus's own `promtool` validates the rules (`check rules`) and runs the unit tests
  in deploy/prometheus/tests/ (`test rules`): each alert is shown firing on the series
  that should wake someone and staying silent on the ones that should not.
- Every alert has such a pair of tests, a severity, a summary, a description and a
  runbook_url whose page and section exist in docs/runbooks/.
- Every series a rule reads is one the application defines, a recording rule of the file,
  or one of the few standard series named here (scrape health, Kafka Exporter,
  kube-state-metrics).

promtool comes from Debian's `prometheus` package (`apt-get install prometheus`); CI
installs it. A missing promtool fails these tests, never skips them.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
REPO_ROOT = DEPLOY.parent
RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"
SCHEMAS = DEPLOY / "tests" / "schemas"

# Series from outside the application that the rules may read.
STANDARD_SERIES = {
    "up",  # Prometheus's scrape health of every target
    "kafka_consumergroup_lag",  # Strimzi's Kafka Exporter
    "kube_pod_container_status_restarts_total",  # kube-state-metrics
}
REQUIRED_RUNBOOKS = {
    "dead-letter-replay.md",
    "token-rotation.md",
    "stuck-relay.md",
    "lagging-consumer.md",
}
RUNBOOK_URL = re.compile(r"^docs/runbooks/(?P<page>[a-z0-9-]+\.md)#(?P<anchor>[a-z0-9-]+)$")


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:  # pragma: no cover - exercised only on a bare machine
        pytest.fail(
            "promtool is not on PATH; install Debian's prometheus package "
            "(apt-get install -y prometheus) or a Prometheus release",
            pytrace=False,
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=300, cwd=RULE_TESTS
    )


@functools.cache
def rules_file() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in rules_file()["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yaml"))


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown, flags=re.M):
        text = re.sub(r"[`*_]", "", heading).strip().lower()
        anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return anchors


def promql_series(expr: str) -> set[str]:
    try:
        import promql_parser
    except ImportError as error:  # pragma: no cover
        pytest.fail(f"{error}; install the dev requirement 'promql-parser'", pytrace=False)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if type(node).__name__ == "VectorSelector" and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


@functools.cache
def application_metric_names() -> frozenset[str]:
    """Every `todo_*` name a metric constructor in the shipped code is given."""
    names: set[str] = set()
    for path in REPO_ROOT.glob("*/**/*.py"):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0].startswith(".") or parts[0] in {"deploy", "bench", "node_modules"}:
            continue
        if "tests" in parts:
            continue
        names |= set(re.findall(r"[\"'](todo_[a-z0-9_]+)[\"']", path.read_text(errors="ignore")))
    return frozenset(names)


def defined_by_the_application(series: str) -> bool:
    base = re.sub(r"_(bucket|sum|count)$", "", series)
    candidates = {series, base, re.sub(r"_total$", "", series)}
    return bool(candidates & application_metric_names())


# --- promtool ---------------------------------------------------------------------------
def test_promtool_accepts_the_rules():
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass():
    files = rule_test_files()
    assert len(files) >= 5, f"expected the rule tests in {RULE_TESTS}"
    result = run_promtool("test", "rules", *(f.name for f in files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_promtool_unit_tests_can_fail(tmp_path):
    """A test that expects silence where the rule fires is reported as a failure."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {"series": 'todo_dead_letters_pending{pod="w"}', "values": "50x20"}
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "15m",
                                "alertname": "TodoDeadLettersPending",
                                "exp_alerts": [],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = run_promtool("test", "rules", str(broken))
    assert result.returncode != 0
    assert "TodoDeadLettersPending" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    firing: set[str] = set()
    silent: set[str] = set()
    for path in rule_test_files():
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../alerts.yaml"], f"{path.name} tests another file"
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), f"alerts never shown firing: {sorted(names - firing)}"
    assert names - silent == set(), f"alerts never shown silent: {sorted(names - silent)}"
    assert (firing | silent) <= names, f"tests of unknown alerts: {(firing | silent) - names}"


# --- The rules as data ------------------------------------------------------------------
def test_rules_file_matches_the_schema():
    try:
        import jsonschema
    except ImportError as error:  # pragma: no cover
        pytest.fail(f"{error}; install the dev requirement 'jsonschema'", pytrace=False)
    schema = json.loads((SCHEMAS / "prometheus-rules.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(rules_file()))
    assert not errors, [e.message for e in errors]


def test_every_alert_is_labelled_annotated_and_has_a_runbook():
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        url = RUNBOOK_URL.match(annotations.get("runbook_url", ""))
        assert url, f"{name}: runbook_url {annotations.get('runbook_url')!r}"
        page = RUNBOOKS / url["page"]
        assert page.is_file(), f"{name}: {page} does not exist"
        assert url["anchor"] in github_anchors(page.read_text()), (
            f"{name}: no section #{url['anchor']} in {page.name}"
        )


def test_rules_read_only_known_series():
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        for series in promql_series(rule["expr"]) - recorded - STANDARD_SERIES:
            assert defined_by_the_application(series), (
                f"{rule.get('alert') or rule.get('record')}: {series} is defined nowhere"
            )


def test_every_recording_rule_feeds_an_alert():
    used = set().union(*(promql_series(alert["expr"]) for alert in alerts()))
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    assert recorded <= used, f"recorded but never alerted on: {recorded - used}"


def test_slo_alerts_use_two_windows_at_the_workbook_burn_rates():
    def compact(name: str) -> str:
        return re.sub(r"\s+", "", next(a["expr"] for a in alerts() if a["alert"] == name))

    for sli, budget in (("availability", "0.001"), ("latency", "0.01")):
        title = sli.capitalize()
        fast = compact(f"TodoApi{title}BudgetFastBurn")
        slow = compact(f"TodoApi{title}BudgetSlowBurn")
        assert fast == (
            f"todo:slo_{sli}_errors:ratio_rate1h>(14.4*{budget})"
            f"andtodo:slo_{sli}_errors:ratio_rate5m>(14.4*{budget})"
        )
        assert slow == (
            f"todo:slo_{sli}_errors:ratio_rate6h>(6*{budget})"
            f"andtodo:slo_{sli}_errors:ratio_rate30m>(6*{budget})"
        )
    latency = next(r for r in rules() if r.get("record") == "todo:slo_latency_errors:ratio_rate5m")
    assert 'le="0.5"' in latency["expr"], "the latency SLI must read an existing bucket"
    from_code = (REPO_ROOT / "core" / "metrics.py").read_text()
    buckets = re.search(r"LATENCY_BUCKETS = \(([^)]*)\)", from_code)
    assert buckets and "0.5" in [b.strip() for b in buckets[1].split(",")]


def test_the_first_rules_keep_their_thresholds():
    def compact(name: str) -> str:
        return re.sub(r"\s+", "", next(a["expr"] for a in alerts() if a["alert"] == name))

    assert compact("TodoSearchLatencyHigh").startswith("histogram_quantile(0.95,")
    assert compact("TodoSearchLatencyHigh").endswith(">1")
    assert compact("TodoEventPublishErrorRateHigh").endswith(">0.01")
    assert 'outcome="failed"' in compact("TodoReminderFailureRateHigh")
    assert compact("TodoReminderFailureRateHigh").endswith(">0.05")
    assert compact("TodoConsumerLagHigh").endswith("todo_consumer_lag_events)>1000")
    assert compact("TodoDeadLettersPending") == "max(todo_dead_letters_pending)>10"
    assert "kube_pod_container_status_restarts_total" in compact("TodoPodRestarting")


def test_every_workload_has_an_absent_target_alert():
    absent = {
        match
        for alert in alerts()
        if alert["alert"] == "TodoScrapeTargetAbsent"
        for match in re.findall(r'absent\(up\{container="([a-z-]+)"\}\)', alert["expr"])
    }
    assert absent == {
        "todo-web",
        "todo-relay",
        "todo-recurrence",
        "todo-notifications",
        "todo-realtime",
        "todo-audit",
        "todo-dead-letters",
        "todo-reminder-scheduler",
    }


# --- Runbooks ---------------------------------------------------------------------------
def test_required_runbooks_exist():
    pages = {p.name for p in RUNBOOKS.glob("*.md")}
    missing = REQUIRED_RUNBOOKS - pages
    assert not missing, f"missing runbooks: {missing}"


def test_runbooks_name_only_real_commands_and_metrics():
    """A runbook read at 3 a.m. must not send anyone to a command or series that is gone."""
    commands = {p.stem for p in REPO_ROOT.glob("*/management/commands/*.py")}
    builtin = {"migrate", "shell", "dbshell", "showmigrations", "createsuperuser", "check"}
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    alert_names = {alert["alert"] for alert in alerts()}
    for page in sorted(RUNBOOKS.glob("*.md")):
        text = page.read_text()
        for command in re.findall(r"python manage\.py\s+([a-z_]+)", text):
            assert command in commands | builtin, f"{page.name}: manage.py {command} does not exist"
        for series in re.findall(r"\b(todo_[a-z0-9_]+)", text):
            assert defined_by_the_application(series), f"{page.name}: {series} is defined nowhere"
        for series in re.findall(r"\b(todo:[a-z0-9_:]+)", text):
            assert series in recorded, f"{page.name}: {series} is not recorded"
        for name in re.findall(r"\b(Todo[A-Z][A-Za-z]+)\b", text):
            assert name in alert_names, f"{page.name}: no alert named {name}"
