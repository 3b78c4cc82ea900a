"""The app started with exactly the environment the chart renders, called as the cluster calls it.

For each values file, the web, relay and a consumer container's environment is taken from the
rendered manifests: the ConfigMap it loads, its literal variables and the Secret keys it refers
to (by ``secretKeyRef``, or as files through ``<NAME>_FILE`` and the Secret's volume). A Secret
the chart does not create (``existingSecret``, Dapr's token Secrets) gets a generated value per
key, as an operator would create it. Only the addresses change: the test database for
``DATABASE_URL``, the test run's Redis for ``REDIS_URL``, free ports for the servers, and an
in-process Dapr stand-in (``bench.sidecar``) that, like daprd, refuses calls without the API
token and calls the app back with the app token, both read from that environment.

Then ``/healthz``, ``/readyz``, ``/metrics`` and ``POST /job/<name>`` are called with the Host
headers kubelet (pod IP and port), daprd (``127.0.0.1:<port>``) and Prometheus send.

Run it with the project's configuration (``make test``, or ``pytest -c pyproject.toml``): it
needs the Django test database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

try:
    from test_deploy import CASES, containers, render
except ImportError:  # collected from the repository root
    from deploy.tests.test_deploy import CASES, containers, render

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
POD_IP = "10.244.1.7"
# The consumer whose container stands for every consumer's.
CONSUMER = "audit"
STARTUP_SECONDS = 45


@dataclass
class Container:
    role: str  # web, relay, consumer
    command: list[str]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()

    def shape(self) -> tuple:
        """The environment less its secret values, paths and ports: two containers of the
        same shape start the same way."""
        hidden = self.secret_names | {"PORT", "METRICS_PORT"}
        return (
            self.role,
            tuple(sorted((k, "" if k in hidden else v) for k, v in self.env.items())),
        )


def _secret_values(rendered, name: str, generated: dict) -> dict[str, str]:
    """The keys of Secret ``name``: as rendered, or generated once per test (a Secret the
    chart leaves to the operator)."""
    for secret in rendered.of_kind("Secret"):
        if secret["metadata"]["name"] == name:
            values = dict(secret.get("stringData") or {})
            for key, encoded in (secret.get("data") or {}).items():
                import base64

                values.setdefault(key, base64.b64decode(encoded).decode())
            return values
    return generated.setdefault(name, {})


def _secret_value(rendered, name: str, key: str, generated: dict) -> str:
    values = _secret_values(rendered, name, generated)
    if key not in values:
        values[key] = secrets.token_urlsafe(48)
    return values[key]


def _environment(
    rendered, template: dict, container: dict, files: Path, generated: dict
) -> tuple[dict, frozenset[str]]:
    """A container's environment as the kubelet would build it, with secret files written
    under ``files`` in place of their mount paths."""
    config_maps = {
        cm["metadata"]["name"]: cm.get("data") or {} for cm in rendered.of_kind("ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        reference = source.get("configMapRef") or {}
        env.update(config_maps.get(reference.get("name"), {}))
    mounts = _secret_mounts(template, container, files)
    secret_names = set()
    for variable in container.get("env") or []:
        name, value = variable["name"], variable.get("value")
        reference = (variable.get("valueFrom") or {}).get("secretKeyRef")
        if reference is not None:
            value = _secret_value(rendered, reference["name"], reference["key"], generated)
            secret_names.add(name)
        elif value is None:
            continue
        if name.endswith("_FILE"):
            value = _write_secret_file(rendered, mounts, str(value), generated)
            secret_names.add(name)
        env[name] = str(value)
    return env, frozenset(secret_names)


def _secret_files(template: dict) -> dict[str, dict[str, tuple[str, str]]]:
    """Volume name -> {file name: (Secret name, key)} for Secret and projected volumes."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for volume in template["spec"].get("volumes") or []:
        sources = [volume["secret"]] if "secret" in volume else []
        sources += [
            {**source["secret"], "secretName": source["secret"]["name"]}
            for source in (volume.get("projected") or {}).get("sources") or []
            if "secret" in source
        ]
        for source in sources:
            items = source.get("items") or []
            found.setdefault(volume["name"], {}).update(
                {item["path"]: (source["secretName"], item["key"]) for item in items}
            )
    return found


def _secret_mounts(template: dict, container: dict, files: Path) -> dict[str, tuple[dict, Path]]:
    """Mount path -> (its files, local directory) for the container's Secret volumes."""
    volumes = _secret_files(template)
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] in volumes:
            local = files / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/")] = (volumes[mount["name"]], local)
    return mounts


def _write_secret_file(rendered, mounts: dict, path: str, generated: dict) -> str:
    directory, _, file_name = path.rpartition("/")
    assert directory in mounts, f"{path} is on no mounted Secret volume"
    volume_files, local = mounts[directory]
    secret_name, key = volume_files.get(file_name, (None, file_name))
    assert secret_name is not None, f"{path}: the volume has no such file"
    target = local / file_name
    target.write_text(_secret_value(rendered, secret_name, key, generated) + "\n")
    return str(target)


def _set_secret(env: dict, name: str, value: str) -> None:
    """Give ``name`` a local value, where the container has it (as a variable or a file)."""
    if f"{name}_FILE" in env:
        Path(env[f"{name}_FILE"]).write_text(value + "\n")
    elif name in env:
        env[name] = value


def _read_secret(env: dict, name: str) -> str:
    if f"{name}_FILE" in env:
        return Path(env[f"{name}_FILE"]).read_text().removesuffix("\n")
    return env.get(name, "")


def _containers_of(
    case: str, files: Path, database_url: str, redis_url: str = "redis://x:6379/0"
) -> list[Container]:
    from bench.benchmarks import free_port, uvicorn_command

    rendered = render(case)
    generated: dict = {}
    found = []
    for workload, template, container in containers(rendered):
        name = workload["metadata"]["name"]
        command = container.get("command") or []
        if name.endswith("-web"):
            role = "web"
        elif command[-2:] == ["run_consumer", CONSUMER]:
            role = "consumer"
        elif command[-1:] == ["relay_events"]:
            role = "relay"
        else:
            continue
        env, secret_names = _environment(rendered, template, container, files / role, generated)
        _set_secret(env, "DATABASE_URL", database_url)
        _set_secret(env, "REDIS_URL", redis_url)
        port = free_port()
        if role == "web":
            env["PORT"] = str(port)
            command = uvicorn_command(port)
        else:
            env["METRICS_PORT"] = str(port)
            command = [sys.executable, *command[1:]]
        found.append(
            Container(
                role=role,
                command=command,
                env=env,
                ports={"http": port},
                secret_names=secret_names,
            )
        )
    assert {c.role for c in found} == {"web", "relay", "consumer"}, case
    return found


def _spawn(container: Container, extra_env: dict) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process)
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    process = subprocess.Popen(
        container.command,
        env={**base, **container.env, **extra_env},
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def _output(process) -> str:
    process.log.seek(0)
    return process.log.read().decode(errors="replace")[-4000:]


def _wait_ready(url: str, process) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited:\n{_output(process)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{process.args} did not become ready:\n{_output(process)}")


def _caller_hosts(port: int) -> dict[str, str]:
    return {
        "kubelet": f"{POD_IP}:{port}",
        "dapr": f"127.0.0.1:{port}",
        "prometheus": f"{POD_IP}:{port}",
        "prometheus-other-port": f"{POD_IP}:9090",
    }


def _reminder_job(user_id: str) -> tuple[str, dict]:
    """A reminder due now, and the job Dapr would hold for it."""
    from django.utils import timezone

    from reminders import jobs
    from reminders.models import Reminder
    from reminders.representation import job_data
    from tasks import services

    task = services.task_create(
        user_id=user_id,
        title="Call Bob",
        due_date=timezone.now() + timedelta(hours=1),
        reminder_time="1h",
        check_reminder_in_past=False,
    )
    reminder = Reminder.objects.get(task_id=task.pk)
    return jobs.job_name(task.pk), job_data(reminder)


def _shapes(case: str, files: Path) -> tuple:
    return tuple(sorted(c.shape() for c in _containers_of(case, files / case, "postgres://x/y")))


def first_case_of_its_shape(case: str, files: Path) -> str:
    """Values files whose web, relay and consumer environments are the same but for secret
    values (they differ in Dapr components or Kafka settings) start the same processes: the
    first of them stands for all."""
    mine = _shapes(case, files)
    return next(other for other in CASES if _shapes(other, files) == mine)


@pytest.mark.parametrize("case", CASES)
def test_the_rendered_environment_answers_kubelet_dapr_and_prometheus(
    case, tmp_path, user_id, redis_url
):
    from django.db import connection

    from bench.benchmarks import database_url
    from bench.sidecar import InProcessDaprSidecar

    if first_case_of_its_shape(case, tmp_path / "shapes") != case:
        return  # started, and checked, under the first values file of the same shape
    started = _containers_of(
        case, tmp_path, database_url(connection.settings_dict["NAME"]), redis_url
    )
    web = next(c for c in started if c.role == "web")
    dapr = web.env.get("EVENTS_BROKER") == "dapr"
    api_token = _read_secret(web.env, "DAPR_API_TOKEN")
    app_token = _read_secret(web.env, "APP_API_TOKEN")
    if dapr:
        assert api_token and app_token, "the chart gives the app both Dapr tokens"
    web_url = f"http://127.0.0.1:{web.ports['http']}"
    job_name, job = _reminder_job(user_id)

    with contextlib.ExitStack() as stack:
        sidecar_env: dict = {}
        if dapr:
            sidecar = stack.enter_context(
                InProcessDaprSidecar(api_token=api_token, app_token=app_token, app_url=web_url)
            )
            sidecar_env = sidecar.environ()
        processes = {}
        for container in started:
            process = _spawn(container, sidecar_env)
            stack.callback(_stop, process)
            processes[container.role] = process
        for container in started:
            _wait_ready(f"http://127.0.0.1:{container.ports['http']}", processes[container.role])

        for container in started:
            port = container.ports["http"]
            for caller, host in _caller_hosts(port).items():
                for path in ("/healthz", "/readyz", "/metrics"):
                    response = httpx.get(
                        f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=10
                    )
                    assert response.status_code == 200, (case, container.role, caller, path)

        for caller, host in _caller_hosts(web.ports["http"]).items():
            refused = httpx.post(
                f"{web_url}/job/{job_name}", json=job, headers={"Host": host}, timeout=10
            )
            # without Dapr the path is not routed: the answer of any unknown path
            assert refused.status_code == (401 if dapr else 404), (case, caller)
            if dapr:
                assert refused.json()["error"]["code"] == "invalid_token"
        if dapr:
            # as daprd calls it: the app token, the job's data packed as it was scheduled
            from google.protobuf import any_pb2, json_format, wrappers_pb2

            packed = any_pb2.Any()
            packed.Pack(wrappers_pb2.StringValue(value=json.dumps(job)))
            sidecar.jobs[job_name] = _job(job_name, packed)
            status, body = sidecar.trigger_job(job_name)
            assert (status, json.loads(body)) == (200, {"status": "fired"}), case
            assert not sidecar.refused_calls, "every call the app made carried its API token"
            assert json_format  # the JSON form daprd sends is the one trigger_job sends


def _job(name: str, data):
    from dapr.proto.runtime.v1 import jobs_pb2

    return jobs_pb2.Job(name=name, data=data)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.log.close()
