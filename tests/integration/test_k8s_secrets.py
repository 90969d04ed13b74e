"""The image as the Helm chart runs it, with plain Docker (no Kubernetes here): the pod's
container settings are read from the chart as rendered (image, capabilities, privilege
escalation, read-only root and its writable paths, the probe, where the Secret is
mounted), users and TLS come from a Kubernetes-style secret directory (files are symlinks
through `..data` to a timestamped directory, swapped atomically on update).
The relay must start healthy, authenticate, refuse wrong passwords and relaying; after a
Secret update and a restart (what the chart's checksum annotation triggers), the new
password works and the old one no longer does."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from relaykit import commands
from relaykit.paths import profiles_dir
from relaykit.profile.load import load_profile
from relaykit.profile.model import Profile
from relaykit.stack.deployment import CAPABILITIES
from relaykit.verify import expect as conformance
from relaykit.verify import image as oci_verify
from relaykit.verify.harness import netns, testbed
from relaykit.verify.harness.engine import ensure_dockerd
from relaykit.verify.suite import format_table, run_suite_via

from ..conftest import is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="needs root (namespaces, dockerd)"),
]

NAME = "rk-scl-k8s"
PROFILE = f"""\
extends: {profiles_dir() / "roaming.yaml"}
name: {NAME}
outputs:
  oci: {{name: rk-scl/k8s-relay, tags: ["1"]}}
"""


def write_secret_dir(directory: Path, files: dict[str, str], stamp: str) -> None:
    """What the kubelet writes for a Secret volume: ..<stamp>/ holds the files, ..data
    points to it, each key is a symlink through ..data; an update renames a new ..data
    link over the old one."""
    data = directory / f"..{stamp}"
    data.mkdir(parents=True)
    for key, text in files.items():
        (data / key).write_text(text)
        (data / key).chmod(0o400)  # the chart's defaultMode
    tmp = directory / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, directory / "..data")
    for key in files:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")


@dataclasses.dataclass(frozen=True)
class ChartPod:
    """The relay container of the chart's StatefulSet, as Docker options."""

    image: str
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    no_new_privileges: bool
    read_only: bool
    writable: tuple[str, ...]
    probe: tuple[str, ...]
    secrets_at: str

    @classmethod
    def render(cls, chart: Path) -> ChartPod:
        manifests = helm.Chart.load(str(chart)).render(
            {"secrets": {"existingSecret": "relay"}}, name="mail", namespace="mail",
            is_install=True)
        [sts] = [d for path, text in manifests.items() if path.endswith(".yaml")
                 for d in yaml.safe_load_all(text) if d and d.get("kind") == "StatefulSet"]
        [c] = sts["spec"]["template"]["spec"]["containers"]
        ctx = c["securityContext"]
        [secrets] = [m for m in c["volumeMounts"] if m["name"] == "secrets"]
        assert secrets["readOnly"] is True
        writable = [m["mountPath"] for m in c["volumeMounts"]
                    if m["name"].startswith("writable-")]
        return cls(image=c["image"], cap_add=tuple(ctx["capabilities"]["add"]),
                   cap_drop=tuple(ctx["capabilities"]["drop"]),
                   no_new_privileges=ctx["allowPrivilegeEscalation"] is False,
                   read_only=ctx["readOnlyRootFilesystem"], writable=tuple(writable),
                   probe=tuple(c["startupProbe"]["exec"]["command"]),
                   secrets_at=secrets["mountPath"])


@dataclasses.dataclass
class Relay:
    profile: Profile
    pod: ChartPod
    secrets: Path  # the Kubernetes-style secret directory, mounted at /run/secrets
    password: str  # the one in the secret directory now
    tls: dict[str, str]
    work: Path
    client: Any

    def users(self, password: str) -> dict[str, str]:
        realm = self.profile.sasl.realm if self.profile.sasl else ""
        return {"sasl-users": f"{testbed.TEST_USER}@{realm}:{password}\n", **self.tls}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    work = tmp_path_factory.mktemp("k8s")
    (work / "p.yaml").write_text(PROFILE)
    mp = pytest.MonkeyPatch()
    mp.setenv("RELAYKIT_BUILD_DIR", str(work / "build"))
    commands.build(str(work / "p.yaml"), formats=("oci", "helm"), log=lambda _m: None)
    mp.undo()
    profile = load_profile(str(work / "p.yaml")).profile
    cert, key, _ = testbed.self_signed(work, profile.postfix.myhostname)
    chart_pod = ChartPod.render(work / "build" / NAME / "chart")
    assert chart_pod.image == "rk-scl/k8s-relay:1"
    r = Relay(profile, chart_pod, work / "secrets", testbed.new_password(),
              {"tls.crt": cert.read_text(), "tls.key": key.read_text()}, work, None)
    write_secret_dir(r.secrets, r.users(r.password), "2026_11_29_08_00_00.000000001")
    ensure_dockerd()
    r.client = oci_verify.docker_client()
    oci_verify.load_image(r.client, work / "build" / NAME / f"{NAME}.oci.tar")
    try:
        yield r
    finally:
        with contextlib.suppress(Exception):
            r.client.images.remove("rk-scl/k8s-relay:1", force=True)


@contextlib.contextmanager
def pod(r: Relay, tag: str) -> Iterator[oci_verify.Running]:
    resolv = r.work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")  # nothing resolves, nothing leaks
    pod = r.pod
    started = time.monotonic()
    container = r.client.containers.run(
        pod.image, detach=True, name=f"rk-scl-k8s-{tag}-{os.getpid()}", network_mode="none",
        cap_drop=list(pod.cap_drop), cap_add=list(pod.cap_add),
        security_opt=["no-new-privileges"] if pod.no_new_privileges else [],
        read_only=pod.read_only, tmpfs={path: "size=16m" for path in pod.writable},
        volumes={str(r.secrets): {"bind": pod.secrets_at, "mode": "ro"},
                 str(resolv): {"bind": "/etc/resolv.conf", "mode": "ro"}},
        # The chart's startup probe, polled every 2 s.
        healthcheck={"test": ["CMD", *pod.probe], "interval": 2_000_000_000,
                     "timeout": 10_000_000_000, "retries": 3, "start_period": 0})
    try:
        container.reload()
        yield oci_verify.Running(container, int(container.attrs["State"]["Pid"]),
                                 r.secrets, r.work, started)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def suite(r: Relay, running: oci_verify.Running, password: str) -> list[Any]:
    oci_verify.wait_ready(running, [lis.port for lis in r.profile.listeners])
    health = oci_verify.check_healthy(running)
    assert health.ok, health.detail + running.logs()[-2000:]
    with netns.client_link(running.pid) as link:
        exp = conformance.expectations(
            r.profile, host=link.server_address, user=testbed.TEST_USER, password=password,
            sink_dir=None, cert_sha256=None, source_address=link.client_address)
        return run_suite_via(dataclasses.replace(exp, use_swaks=False), link.runner)


def auth_plain(results: list[Any]) -> Any:
    [found] = [x for x in results if x.name == "auth-PLAIN" and x.listener == "submission"]
    return found


def test_kubernetes_secret_layout_then_rotation(relay: Relay) -> None:
    assert (relay.secrets / "sasl-users").is_symlink()
    assert os.readlink(relay.secrets / "sasl-users") == "..data/sasl-users"
    with pod(relay, "a") as running:
        results = suite(relay, running, relay.password)
        table = format_table(results)
        assert all(r.ok for r in results), table  # AUTH, wrong password, relay refused
        assert auth_plain(results).ok, table
        assert relay.password not in running.logs()

    # The Secret changes: the kubelet swaps ..data; the checksum annotation restarts pods.
    old, relay.password = relay.password, testbed.new_password()
    write_secret_dir(relay.secrets, relay.users(relay.password),
                     "2026_11_29_09_00_00.000000002")
    assert os.readlink(relay.secrets / "..data") == "..2026_11_29_09_00_00.000000002"
    with pod(relay, "b") as running:
        results = suite(relay, running, relay.password)
        assert all(r.ok for r in results), format_table(results)
        with netns.client_link(running.pid) as link:
            exp = conformance.expectations(
                relay.profile, host=link.server_address, user=testbed.TEST_USER,
                password=old, sink_dir=None, cert_sha256=None,
                source_address=link.client_address)
            stale = auth_plain(run_suite_via(dataclasses.replace(exp, use_swaks=False),
                                             link.runner))
    assert not stale.ok and stale.detail.startswith("535"), stale.detail


def test_capabilities_are_really_dropped(relay: Relay) -> None:
    """The pod's capability set is what the container gets: nothing beyond the list."""
    with pod(relay, "c") as running:
        oci_verify.wait_ready(running, [lis.port for lis in relay.profile.listeners])
        status = running.container.exec_run(["grep", "-E", "^(CapBnd|NoNewPrivs)",
                                              "/proc/1/status"]).output.decode()
    fields = dict(line.split(":\t") for line in status.strip().splitlines())
    assert fields["NoNewPrivs"].strip() == "1"
    assert set(relay.pod.cap_add) == set(CAPABILITIES) and relay.pod.cap_drop == ("ALL",)
    allowed = sum(1 << CAP_NUMBERS[c] for c in relay.pod.cap_add)
    assert int(fields["CapBnd"], 16) == allowed


CAP_NUMBERS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5,
               "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18}
