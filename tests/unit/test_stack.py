"""`--format stack`: the Compose file Swarm deploys, and the checks that only make sense
once the relay runs behind a cluster's networking.  The stack is deployed for real in
tests/integration/test_swarm.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from relaykit import commands
from relaykit.errors import Level, ProfileError
from relaykit.oci.from_profile import HEALTHCHECK
from relaykit.profile.load import load_profile
from relaykit.stack.deployment import (
    CAPABILITIES,
    Backend,
    declared_deployment_findings,
    runtime_secrets,
)

from ..conftest import ROOT


def _quiet(_message: str) -> None:
    """Swallow build progress lines."""




def profile(tmp_path: Path, body: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(f"extends: {ROOT / 'profiles' / 'roaming.yaml'}\n{body}")
    return str(path)


def stack_of(build: Path, name: str = "roaming") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((build / name / "stack.yml").read_text())
    return doc


@pytest.fixture
def roaming_stack(build_dir: Path) -> dict[str, Any]:
    commands.build("roaming", fmt="stack", log=_quiet)
    return stack_of(build_dir)


def test_one_queue_volume_per_task_slot(roaming_stack: dict[str, Any]) -> None:
    relay = roaming_stack["services"]["relay"]
    assert relay["volumes"] == [{"type": "volume", "source": "queue",
                                 "target": "/var/spool/postfix"}]
    # Swarm expands the template per task: slot 1's replacement finds slot 1's queue.
    assert roaming_stack["volumes"] == {"queue": {"name": "roaming-queue-{{.Task.Slot}}"}}


def test_updates_never_run_two_tasks_on_one_queue(roaming_stack: dict[str, Any]) -> None:
    deploy = roaming_stack["services"]["relay"]["deploy"]
    for key in ("update_config", "rollback_config"):
        assert deploy[key]["order"] == "stop-first"
        assert deploy[key]["parallelism"] == 1
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["replicas"] == 2 and deploy["mode"] == "replicated"
    assert deploy["restart_policy"]["condition"] == "any"


def test_ports_published_in_host_mode_one_task_per_node(
        roaming_stack: dict[str, Any]) -> None:
    relay = roaming_stack["services"]["relay"]
    assert relay["ports"] == [
        {"target": 587, "published": 587, "protocol": "tcp", "mode": "host"},
        {"target": 465, "published": 465, "protocol": "tcp", "mode": "host"}]
    assert relay["deploy"]["placement"] == {"max_replicas_per_node": 1}
    # No virtual IP (IPVS) in front of the tasks: DNS round robin over them.
    assert relay["deploy"]["endpoint_mode"] == "dnsrr"


def test_secrets_at_the_runtime_contract_paths_never_in_the_file(
        build_dir: Path, roaming_stack: dict[str, Any]) -> None:
    relay = roaming_stack["services"]["relay"]
    assert [(s["source"], s["target"], s["mode"]) for s in relay["secrets"]] == [
        ("roaming-sasl-users", "sasl-users", 0o400),
        ("roaming-tls-crt", "tls.crt", 0o444),
        ("roaming-tls-key", "tls.key", 0o400)]
    assert roaming_stack["secrets"] == {s["source"]: {"external": True}
                                        for s in relay["secrets"]}
    text = (build_dir / "roaming" / "stack.yml").read_text()
    assert "mode: 0400" in text and "mode: 0444" in text  # octal, as Compose reads it


def test_least_capabilities(roaming_stack: dict[str, Any]) -> None:
    relay = roaming_stack["services"]["relay"]
    assert relay["cap_drop"] == ["ALL"]
    assert relay["cap_add"] == list(CAPABILITIES)
    assert "privileged" not in relay


def test_health_stop_and_resources(roaming_stack: dict[str, Any]) -> None:
    relay = roaming_stack["services"]["relay"]
    assert relay["healthcheck"]["test"] == ["CMD", HEALTHCHECK]
    assert relay["healthcheck"]["interval"] == "10s"
    assert relay["stop_signal"] == "SIGTERM" and relay["stop_grace_period"] == "60s"
    assert relay["deploy"]["resources"] == {
        "limits": {"cpus": "1", "memory": "512M"},
        "reservations": {"cpus": "0.1", "memory": "128M"}}
    assert relay["image"] == "relaykit/roaming:1.0.0"  # a version, not `latest`


def test_declared_settings_are_used(tmp_path: Path, build_dir: Path) -> None:
    ref = profile(tmp_path, "name: edge\noutputs:\n  oci: {name: mail/edge, tags: [latest]}\n"
                  "  stack: {replicas: 5, publish: none, stop_grace_period_s: 120,\n"
                  "          resources: {cpu_millicores: 2500, memory_mib: 1024}}\n")
    commands.build(ref, log=_quiet)  # declared outputs.stack: built by default
    relay = stack_of(build_dir, "edge")["services"]["relay"]
    assert relay["deploy"]["replicas"] == 5
    assert "ports" not in relay and "placement" not in relay["deploy"]
    assert relay["stop_grace_period"] == "120s"
    assert relay["deploy"]["resources"]["limits"] == {"cpus": "2.5", "memory": "1024M"}
    assert relay["image"] == "mail/edge:latest"


def test_global_mode_one_task_and_one_queue_per_node(tmp_path: Path, build_dir: Path
                                                       ) -> None:
    commands.build(profile(tmp_path, "name: g\noutputs: {stack: {mode: global}}\n"),
                   fmt="stack", log=_quiet)
    doc = stack_of(build_dir, "g")
    deploy = doc["services"]["relay"]["deploy"]
    assert deploy["mode"] == "global" and "replicas" not in deploy
    assert "placement" not in deploy  # global is one task per node already
    assert doc["volumes"] == {"queue": {"name": "g-queue"}}  # the node's own queue
    assert deploy["update_config"]["order"] == "stop-first"


def test_stack_files_match_the_compose_specification(tmp_path: Path, build_dir: Path
                                                     ) -> None:
    commands.build("roaming", fmt="stack", log=_quiet)
    commands.build(profile(tmp_path, "name: b\noutputs: {stack: {publish: none}}\n"),
                   fmt="stack", log=_quiet)
    commands.build(profile(tmp_path, "name: g\noutputs: {stack: {mode: global}}\n",
                           name="g.yaml"), fmt="stack", log=_quiet)
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker is not None, "pip install check-jsonschema (in the test extra)"
    proc = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec",
                           str(build_dir / "roaming" / "stack.yml"),
                           str(build_dir / "b" / "stack.yml"),
                           str(build_dir / "g" / "stack.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- policy that knows the deployment ---------------------------------------------------

def refused(ref: str, fmt: str) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        commands.build(ref, fmt=fmt, log=_quiet)
    return info.value


@pytest.mark.parametrize(("fmt", "outputs", "network"), [
    ("stack", "{stack: {publish: host}}", "10.0.0.0/16"),       # overlay pool
    ("stack", "{stack: {publish: host}}", "172.20.0.0/16"),     # bridge / gwbridge pool
    ("helm", "{helm: {service_type: LoadBalancer}}", "10.244.0.0/16"),  # pods
    ("helm", "{helm: {service_type: NodePort}}", "10.100.0.0/16"),  # services
    ("helm", "{helm: {service_type: LoadBalancer, cluster_networks: [100.64.0.0/10]}}",
     "100.64.1.0/24"),
    ("helm", "{helm: {service_type: LoadBalancer}}", "10.0.0.0/8"),  # covers them all
    ("helm", "{helm: {service_type: LoadBalancer}}", "'[::ffff:10.244.0.0]/112'"),  # mapped
])
def test_mynetworks_covering_the_cluster_of_a_published_relay_is_refused(
        tmp_path: Path, build_dir: Path, fmt: str, outputs: str, network: str) -> None:
    ref = profile(tmp_path, f"name: c\npostfix:\n  mynetworks:\n    - 127.0.0.0/8\n"
                  f"    - {network}\noutputs: {outputs}\n")
    err = refused(ref, fmt)
    [diag] = [d for d in err.diagnostics if d.code == "cluster-relay"]
    assert (diag.file, diag.line, diag.path) == (ref, 6, ".postfix.mynetworks[1]")
    assert diag.level is Level.ERROR and "open relay" in diag.message
    assert not (build_dir / "c").exists()  # nothing half-written


@pytest.mark.parametrize(("fmt", "outputs"), [
    ("stack", "{stack: {publish: none}}"), ("helm", "{helm: {service_type: ClusterIP}}")])
def test_unpublished_relay_trusting_the_cluster_only_warns(
        tmp_path: Path, build_dir: Path, fmt: str, outputs: str) -> None:
    ref = profile(tmp_path, "name: w\npostfix:\n  mynetworks: [127.0.0.0/8, 10.0.0.0/8]\n"
                  f"outputs: {outputs}\n")
    logged: list[str] = []
    commands.build(ref, fmt=fmt, log=logged.append)
    assert any("warning: mynetworks 10.0.0.0/8 overlaps" in m and "[cluster-relay]" in m
               for m in logged)


def test_loopback_mynetworks_is_fine_everywhere(tmp_path: Path, build_dir: Path) -> None:
    ref = profile(tmp_path, "name: ok\noutputs: {stack: {publish: host}, "
                  "helm: {service_type: LoadBalancer}}\n")
    logged: list[str] = []
    commands.build(ref, fmt="stack", log=logged.append)
    commands.build(ref, fmt="helm", log=logged.append)
    assert not [m for m in logged if "warning" in m]


def test_satellite_cannot_be_scaled(build_dir: Path) -> None:
    err = refused("satellite", "stack")
    assert [d.code for d in err.diagnostics] == ["not-scalable"]
    assert err.diagnostics[0].file.endswith("satellite.yaml")


@pytest.mark.parametrize("fmt", ["stack", "helm"])
def test_a_fixed_certificate_path_is_refused(tmp_path: Path, build_dir: Path, fmt: str
                                             ) -> None:
    ref = profile(tmp_path, "name: t\ntls: {cert_file: /etc/relaykit/tls/relay.pem, "
                  "key_file: /etc/relaykit/tls/relay.key}\n")
    [diag] = refused(ref, fmt).diagnostics
    assert (diag.code, diag.path) == ("secret-path", ".tls.cert_file")


def test_secrets_outside_run_secrets_are_refused(tmp_path: Path, build_dir: Path) -> None:
    ref = profile(tmp_path, "name: s\nsasl:\n  backend: saslauthd\n  mechanisms: [PLAIN]\n"
                  "  users_file: /etc/relaykit/users\n")
    err = refused(ref, "helm")
    [diag] = err.diagnostics
    assert (diag.code, diag.line, diag.path) == ("secret-path", 6, ".sasl.users_file")


def test_a_version_helm_cannot_use_is_refused_before_anything_is_built(
        tmp_path: Path, build_dir: Path) -> None:
    ref = profile(tmp_path, "name: v\nversion: 1.0~rc1\n")
    [diag] = refused(ref, "helm").diagnostics
    assert (diag.code, diag.line, diag.path) == ("chart-version", 3, ".version")
    commands.build(ref, fmt="stack", log=_quiet)  # a stack does not care


def test_requests_above_limits_are_refused(tmp_path: Path, build_dir: Path) -> None:
    ref = profile(tmp_path, "name: r\noutputs:\n  stack:\n    resources:\n"
                  "      memory_mib: 128\n      memory_request_mib: 256\n")
    err = refused(ref, "stack")
    [diag] = err.diagnostics
    assert (diag.code, diag.path) == ("resources",
                                      ".outputs.stack.resources.memory_request_mib")


def test_unknown_or_unbounded_settings_fail_the_schema(tmp_path: Path, build_dir: Path
                                                       ) -> None:
    for bad in ("{stack: {replicas: 0}}", "{stack: {replicas: 65}}",
                "{stack: {publish: ingress}}", "{stack: {healthcheck_interval_s: 1}}",
                "{stack: {mode: replicated-job}}",
                "{helm: {service_type: ExternalName}}", "{helm: {queue_storage_gib: 0}}",
                "{helm: {cluster_networks: []}}", "{stack: {rolling: fast}}"):
        with pytest.raises(ProfileError):
            load_profile(profile(tmp_path, f"name: u\noutputs: {bad}\n"))


def test_check_for_policy_registration_sees_declared_deployments(tmp_path: Path) -> None:
    """declared_deployment_findings has the shape of a relaykit.profile.policy check."""
    plain = load_profile("roaming").resolved
    assert list(declared_deployment_findings(plain)) == []
    data = load_profile(profile(tmp_path, "name: d2\noutputs: {helm: {}}\n")).resolved
    data["postfix"]["mynetworks"] = ["10.0.0.0/8"]
    data["outputs"]["helm"]["service_type"] = "LoadBalancer"
    assert [f.code for f in declared_deployment_findings(data)] == ["cluster-relay"]


def test_runtime_secrets_follow_the_profile() -> None:
    roaming = load_profile("roaming").profile
    assert [f.key for f in runtime_secrets(roaming)] == ["sasl-users", "tls.crt", "tls.key"]
    satellite = load_profile("satellite").profile
    assert "sasl-passwd" in [f.key for f in runtime_secrets(satellite)]
    assert Backend("stack") is Backend.STACK


def test_registered_in_policy_validate_refuses_and_build_does_not_repeat(
        tmp_path: Path, build_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """policy runs declared_deployment_findings (registered once)."""
    from relaykit.profile import policy

    assert policy.CHECKS.count(declared_deployment_findings) == 1
    bad = profile(tmp_path, "name: v\npostfix:\n  mynetworks: [10.0.0.0/8]\n"
                  "outputs: {helm: {service_type: LoadBalancer}}\n")
    with pytest.raises(ProfileError) as info:
        commands.validate(bad)  # `invoke validate` now knows the deployment
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("cluster-relay", 4)]
    warn = profile(tmp_path, "name: w\npostfix:\n  mynetworks: [127.0.0.0/8, 10.0.0.0/8]\n"
                   "outputs: {helm: {}}\n", name="w.yaml")
    logged: list[str] = []
    commands.build(warn, fmt="helm", log=logged.append)
    assert len([m for m in logged if "[cluster-relay]" in m]) == 1
    # Undeclared but asked for with --format: still checked at build time.
    undeclared = profile(tmp_path, "name: u\npostfix:\n  mynetworks: [10.0.0.0/8]\n",
                         name="u.yaml")
    refused(undeclared, "stack")


def test_backend_entry_points_find_what_they_built(build_dir: Path) -> None:
    """The shapes relaykit.commands' Backend table takes: build, artifact, verify."""
    from relaykit.errors import RelaykitError
    from relaykit.stack import build as scale

    p = load_profile("roaming").profile
    out = build_dir / "roaming"
    assert scale.stack_artifact(p, out) is None and scale.helm_artifact(p, out) is None
    commands.build("roaming", fmt="stack", log=_quiet)
    commands.build("roaming", fmt="helm", log=_quiet)
    assert scale.stack_artifact(p, out) == out / "stack.yml"
    assert scale.helm_artifact(p, out) == out / "chart"
    with pytest.raises(RelaykitError, match="does not deploy"):
        scale.verify_deployment(p, out / "stack.yml", _quiet)
