"""The publishing workflows, checked offline: GitHub's workflow schema
(check-jsonschema), the security audit (zizmor, strictest persona), and the project's own
rules: actions pinned by commit, least permissions, CI runs the README's command, the
release builds and verifies every shipped profile before it publishes anything."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert path is not None, f"{name} missing: pip install -e '.[test]'"
    return path


def load(path: Path) -> dict[str, Any]:
    # PyYAML reads the `on:` key as True (YAML 1.1); GitHub reads it as "on".
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in doc["jobs"].items() for step in spec["steps"]]


def test_there_are_ci_and_release_workflows() -> None:
    assert {"ci.yml", "release.yml"} <= {p.name for p in WORKFLOWS}


def test_workflows_match_githubs_schema() -> None:
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", *map(str, WORKFLOWS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_security_audit_finds_nothing_even_pedantic() -> None:
    proc = subprocess.run([tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress",
                           str(ROOT / ".github" / "workflows")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_by_commit_with_version_comment(path: Path) -> None:
    text = path.read_text()
    for job, step in steps(load(path)):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{job}: {step['uses']} is not pinned"
            assert re.search(re.escape(step["uses"]) + r"\s+# v\d", text), step["uses"]
    for spec in load(path)["jobs"].values():
        image = spec.get("container", {}).get("image", "")
        assert not image or re.search(r"@sha256:[0-9a-f]{64}$", image), image


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_permissions(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}, "nothing by default"
    for name, job in doc["jobs"].items():
        perms = job["permissions"]
        assert set(perms.values()) <= {"read", "write"}, name
        writes = {k for k, v in perms.items() if v == "write"}
        if path.name in ("ci.yml", "release.yml"):
            assert writes <= ({"contents"} if name == "release-assets" else set()), name
    for job, step in steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expressions_inside_scripts(path: Path) -> None:
    """Values reach scripts through env:, never by template expansion into the shell."""
    for job, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{job}: {step.get('name')}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./bootstrap invoke test" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("exec ./bootstrap invoke test")
    doc = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert set(doc["on"]) == {"push", "pull_request"}
    runs = [s["run"] for _, s in steps(doc) if "run" in s]
    assert runs == ["./.ci/run"]
    assert doc["jobs"]["test"]["env"]["CI"] == "true"  # missing tools fail, never skip


def test_release_verifies_before_it_publishes() -> None:
    doc = load(ROOT / ".github" / "workflows" / "release.yml")
    assert doc["on"] == {"push": {"tags": ["v*"]}}
    build = "\n".join(s.get("run", "") for s in doc["jobs"]["build"]["steps"])
    assert "invoke profiles" in build  # every shipped profile, not a list to maintain
    for command in ("invoke build --profile", "--format stack", "--format helm",
                    "invoke verify --profile \"$profile\" --format oci",
                    "invoke verify --profile \"$profile\" --format deb"):
        assert command in build, command
    for job in ("publish-images", "release-assets"):
        assert doc["jobs"][job]["needs"] == "build"
        assert doc["jobs"][job]["environment"] == "release"
    publish = "\n".join(s.get("run", "") for s in doc["jobs"]["publish-images"]["steps"])
    assert "invoke publish --profile" in publish and "$GIT_TAG" in publish
    assert "--password-stdin" in publish  # never a password on a command line
