"""The generated stack.yml on a real Docker Swarm, started by the test beside the host's
engine (its own data-root and socket; relaykit.stack.swarm), torn down at the end.

Two replicas of the roaming relay, each reached through its own network namespace:
AUTH works on each, wrong passwords and unauthenticated relaying are refused (the whole
conformance suite, per replica).  Mail accepted while the relayhost is down waits in
slot 1's queue volume, survives SIGKILL of the task and a rolling update to a rebuilt
image, and is delivered once the relayhost answers.  During the update no two tasks ever
run on one queue volume.  Killed under a stream of submissions, no accepted mail is lost.
A global-mode stack keeps each node's queue across a kill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relaykit import commands
from relaykit.paths import profiles_dir
from relaykit.profile.load import load_profile
from relaykit.stack.deployment import CAPABILITIES
from relaykit.stack.swarm import GATEWAY_BRIDGE, SwarmEngine, Task, private_swarm
from relaykit.verify import expect as conformance
from relaykit.verify.harness import netns, testbed
from relaykit.verify.smtp import wait_for_token
from relaykit.verify.suite import format_table, run_suite_via

from ..conftest import is_root

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not is_root(), reason="needs root (a second dockerd, namespaces)"),
]

STACK = "rk-scl"
SERVICE = f"{STACK}_relay"
NAME = "rk-scl-relay"
SINK = "127.0.0.1:2525"  # the relayhost: a sink we start inside a task's namespace, late

# Tasks on an overlay network resolve through Docker's embedded DNS, which has nowhere to
# forward to on this machine and never answers: without this, every SMTP connection
# waits 10 s for the client's reverse lookup.
PROFILE = """\
extends: {roaming}
name: {name}
version: {version}
postfix:
  main_cf: {{smtpd_peername_lookup: "no"}}
outbound:
  relayhost: "[127.0.0.1]:2525"
# One test client submits 80 messages within a minute (kill under load): the per-client
# limits of the abuse section would answer 4xx long before.
abuse:
  auth_rate: 1000
  connection_rate: 10000
  connection_count: 100
  message_rate: 100000
  recipient_rate: 100000
outputs:
  oci: {{name: rk-scl/relay, tags: ["{tag}"]}}
  stack:
    mode: {mode}
    replicas: 2
    publish: none            # host-mode ports need iptables, off on this machine
    healthcheck_interval_s: 3
    stop_grace_period_s: 20
"""


@dataclass(frozen=True)
class Deployed:
    engine: SwarmEngine
    password: str
    work: Path
    build: Path


def build(work: Path, version: str, tag: str, mode: str = "replicated",
          formats: tuple[str, ...] = ("oci", "stack")) -> Path:
    profile = work / f"v{tag}-{mode}.yaml"
    profile.write_text(PROFILE.format(roaming=profiles_dir() / "roaming.yaml", name=NAME,
                                      version=version, tag=tag, mode=mode))
    commands.build(str(profile), formats=formats, log=lambda _m: None)
    return profile


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    work = tmp_path_factory.mktemp("swarm")
    mp = pytest.MonkeyPatch()
    mp.setenv("RELAYKIT_BUILD_DIR", str(work / "build"))
    build(work, "1.0.0", "1")
    out = work / "build" / NAME
    password = testbed.new_password()
    secrets = work / "secrets"
    secrets.mkdir()
    testbed.write_secret(secrets / "sasl-users", f"{testbed.TEST_USER}@example.org:"
                         f"{password}\n")
    testbed.self_signed(secrets, "relay.example.org")
    root = Path("/run") / f"rk-scl-swarm-{work.name}"
    with private_swarm(root) as engine:
        dockerd_pid = int((root / "dockerd.pid").read_text())
        engine.docker("load", "-q", "-i", str(out / f"{NAME}.oci.tar"))
        for key in ("sasl-users", "tls.crt", "tls.key"):
            engine.docker("secret", "create", f"{NAME}-{key.replace('.', '-')}",
                          str(secrets / key))
        started = time.monotonic()
        engine.docker("stack", "deploy", "--resolve-image", "never",
                      "--compose-file", str(out / "stack.yml"), STACK)
        engine.wait_tasks(SERVICE, replicas=2)
        print(f"2 replicas healthy {time.monotonic() - started:.1f} s after deploy")
        yield Deployed(engine, password, work, work / "build")
    mp.undo()
    # The engine took everything with it: process, bridge, mounts, directory.
    assert not Path(f"/proc/{dockerd_pid}").exists() or \
        Path(f"/proc/{dockerd_pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    assert not root.exists()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert GATEWAY_BRIDGE not in links
    assert str(root) not in Path("/proc/self/mounts").read_text()


def queue_ids(engine: SwarmEngine, task: Task) -> set[str]:
    out = engine.docker("exec", task.container, "postqueue", "-j")
    return {json.loads(line)["queue_id"] for line in out.splitlines() if line.strip()}


SUBMIT = """\
import smtplib, ssl, sys
host, port, user, pw_file, token = sys.argv[1:6]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
sender = user + "@example.org"  # the login's own address: sender binding
msg = (f"From: <{sender}>\\r\\nTo: <someone@foreign.example>\\r\\n"
       f"Subject: relaykit {token}\\r\\nMessage-ID: <{token}@relaykit>\\r\\n\\r\\n{token}\\r\\n")
with smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20) as s:
    s.login(user, open(pw_file).read())
    s.sendmail(sender, ["someone@foreign.example"], msg)
"""


def submit(d: Deployed, task: Task, token: str) -> None:
    pw_file = d.work / "password"
    testbed.write_secret(pw_file, d.password)
    with netns.client_link(task.pid) as link:
        proc = subprocess.run([*link.runner, sys.executable, "-c", SUBMIT,
                               link.server_address, "465", testbed.TEST_USER, str(pw_file),
                               token], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-1500:]


CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6,
            "SETUID": 7, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18}


def test_two_replicas_healthy_each_on_its_own_slot_volume(deployed: Deployed) -> None:
    tasks = deployed.engine.tasks(SERVICE)
    assert [t.slot for t in tasks] == [1, 2]
    assert all(t.health == "healthy" for t in tasks)
    assert [t.volumes for t in tasks] == [(f"{NAME}-queue-1",), (f"{NAME}-queue-2",)]
    # The stack's cap_drop/cap_add reach the tasks: nothing beyond the list.
    allowed = sum(1 << CAP_BITS[c] for c in CAPABILITIES)
    for t in tasks:
        status = deployed.engine.docker("exec", t.container, "grep", "CapBnd", "/proc/1/status")
        assert int(status.split()[1], 16) == allowed, status


def test_conformance_suite_on_each_replica(deployed: Deployed) -> None:
    """AUTH on 587 and 465 of each replica; wrong passwords and unauthenticated relay
    (with the usual tricks) refused; authenticated relay accepted (queued: relayhost down)."""
    p = load_profile(str(deployed.work / "v1-replicated.yaml")).profile
    for task in deployed.engine.tasks(SERVICE):
        with netns.client_link(task.pid) as link:
            exp = conformance.expectations(
                p, host=link.server_address, user=testbed.TEST_USER,
                password=deployed.password, sink_dir=None, cert_sha256=None,
                source_address=link.client_address)
            results = run_suite_via(dataclasses.replace(exp, use_swaks=False), link.runner)
        table = format_table(results)
        print(f"slot {task.slot}:\n{table}")
        assert all(r.ok for r in results), table
        checked = {(r.listener, r.name) for r in results}
        for lis in ("submission", "submissions"):
            for name in ("auth-PLAIN", "auth-PLAIN-wrong-password", "auth-LOGIN-wrong-password",
                         "relay-unauthenticated", "relay-authenticated"):
                assert (lis, name) in checked, f"slot {task.slot}: {lis} {name} not run"


class VolumeWatch:
    """Polls the running tasks during an update: no volume may be mounted twice."""

    def __init__(self, engine: SwarmEngine) -> None:
        self.engine = engine
        self.shared: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            seen: dict[str, int] = {}
            try:
                tasks = self.engine.tasks(SERVICE)
            except Exception:  # a container vanished between ps and inspect
                continue
            for t in tasks:
                for v in t.volumes:
                    seen[v] = seen.get(v, 0) + 1
            self.shared += [v for v, n in seen.items() if n > 1]
            self.samples += 1
            self._stop.wait(0.5)

    def __enter__(self) -> VolumeWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_queued_mail_survives_kill_and_rolling_update_then_is_delivered(
        deployed: Deployed) -> None:
    engine = deployed.engine
    slot1 = engine.tasks(SERVICE)[0]
    token = f"rk-{testbed.new_password()[3:].replace('-', 'x')}"
    submit(deployed, slot1, token)
    queued = queue_ids(engine, slot1)
    assert queued, "the relayhost is down: the accepted mail must wait in the queue"

    # A crash: SIGKILL, no clean stop.  Swarm starts a replacement in slot 1.
    started = time.monotonic()
    engine.docker("kill", slot1.container)
    tasks = engine.wait_tasks(SERVICE, replicas=2)
    replacement = tasks[0]
    print(f"slot 1 replaced and healthy after {time.monotonic() - started:.1f} s")
    assert replacement.container != slot1.container
    assert replacement.volumes == (f"{NAME}-queue-1",)
    assert queued <= queue_ids(engine, replacement)

    # A rolling update to a rebuilt image (new version, new tag), as an admin would roll.
    build(deployed.work, "1.0.1", "2")
    out = deployed.build / NAME
    engine.docker("load", "-q", "-i", str(out / f"{NAME}.oci.tar"))
    started = time.monotonic()
    with VolumeWatch(engine) as watch:
        engine.docker("stack", "deploy", "--resolve-image", "never",
                      "--compose-file", str(out / "stack.yml"), STACK)
        tasks = engine.wait_tasks(SERVICE, replicas=2, image="rk-scl/relay:2", timeout=180)
    print(f"rolling update done after {time.monotonic() - started:.1f} s "
          f"({watch.samples} samples)")
    assert watch.shared == [], f"two tasks ran on one queue: {watch.shared}"
    assert watch.samples > 5
    updated = tasks[0]
    assert updated.volumes == (f"{NAME}-queue-1",)
    assert queued <= queue_ids(engine, updated)

    # The relayhost comes back: the queue drains into it.
    maildir = deployed.work / "sink"
    with testbed.sink(updated.nsenter, maildir, SINK):
        engine.docker("exec", updated.container, "postqueue", "-f")
        found = wait_for_token(maildir, token, 60)
        assert found is not None, f"{token} was not delivered after the update"
        deadline = time.monotonic() + 60
        while queue_ids(engine, updated) and time.monotonic() < deadline:
            time.sleep(1)
    assert queue_ids(engine, updated) == set()


LOAD = """\
import smtplib, ssl, sys, time
host, port, user, pw_file, prefix, count = sys.argv[1:7]
password = open(pw_file).read()
sender = user + "@example.org"  # the login's own address: sender binding
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for i in range(int(count)):
    token = f"{prefix}n{i:03d}"
    msg = (f"From: <{sender}>\\r\\nTo: <someone@foreign.example>\\r\\n"
           f"Subject: load {token}\\r\\n\\r\\n{token}\\r\\n")
    try:
        with smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=10) as s:
            s.login(user, password)
            s.sendmail(sender, ["someone@foreign.example"], msg)
        print("ACCEPTED", token, flush=True)   # after the 250 to DATA: Postfix owns it
    except Exception as exc:
        print("FAILED", token, type(exc).__name__, flush=True)
        time.sleep(0.2)
"""


def test_kill_under_load_loses_no_accepted_mail(deployed: Deployed) -> None:
    """Both replicas take a stream of authenticated submissions; slot 1 is SIGKILLed in
    the middle.  Refused or cut connections are fine (clients retry); every message a
    replica accepted must reach the relayhost once it answers."""
    engine = deployed.engine
    tasks = engine.wait_tasks(SERVICE, replicas=2)
    pw_file = deployed.work / "password"
    testbed.write_secret(pw_file, deployed.password)
    outputs: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        senders = {}
        for task in tasks:
            link = stack.enter_context(netns.client_link(task.pid))
            senders[task.slot] = subprocess.Popen(
                [*link.runner, sys.executable, "-c", LOAD, link.server_address, "465",
                 testbed.TEST_USER, str(pw_file), f"rk-load-{task.slot}", "40"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)
        engine.docker("kill", tasks[0].container)
        for slot, proc in senders.items():
            outputs[slot] = proc.communicate(timeout=300)[0]
    accepted = {line.split()[1] for out in outputs.values() for line in out.splitlines()
                if line.startswith("ACCEPTED")}
    print(f"accepted {len(accepted)} of 80 submissions; slot 1 killed after 2 s")
    assert any(t.startswith("rk-load-1n") for t in accepted), outputs[1][-500:]
    assert any(t.startswith("rk-load-2n") for t in accepted), outputs[2][-500:]
    assert "FAILED" in outputs[1], "the kill did not interrupt slot 1's stream"

    # The relayhost answers again: the replacement of slot 1 and slot 2 drain their queues.
    tasks = engine.wait_tasks(SERVICE, replicas=2)
    with contextlib.ExitStack() as stack:
        maildirs = [stack.enter_context(testbed.sink(t.nsenter, deployed.work /
                                                     f"load-sink-{t.slot}", SINK))
                    for t in tasks]
        for t in tasks:
            engine.docker("exec", t.container, "postqueue", "-f")
        deadline = time.monotonic() + 90
        missing = accepted
        while missing and time.monotonic() < deadline:
            delivered = "".join(p.read_text(errors="replace") for d in maildirs
                                for p in d.glob("*.eml"))
            missing = {t for t in accepted if t not in delivered}
            time.sleep(1)
    assert not missing, f"accepted but never delivered: {sorted(missing)}"


def test_global_mode_replacement_keeps_the_nodes_queue(deployed: Deployed) -> None:
    """mode: global, one task per node on the node's own queue volume: killed, its
    replacement on the same node finds the mail it had queued."""
    engine = deployed.engine
    build(deployed.work, "1.0.1", "2", mode="global", formats=("stack",))
    service = "rk-scl-g_relay"
    engine.docker("stack", "deploy", "--resolve-image", "never", "--compose-file",
                  str(deployed.build / NAME / "stack.yml"), "rk-scl-g")
    [task] = engine.wait_tasks(service, replicas=1)
    assert task.volumes == (f"{NAME}-queue",)
    token = f"rk-{testbed.new_password()[3:].replace('-', 'x')}"
    submit(deployed, task, token)
    queued = queue_ids(engine, task)
    assert queued
    engine.docker("kill", task.container)
    [replacement] = engine.wait_tasks(service, replicas=1)
    assert replacement.container != task.container
    assert replacement.volumes == (f"{NAME}-queue",)
    assert queued <= queue_ids(engine, replacement)
    engine.docker("stack", "rm", "rk-scl-g")
