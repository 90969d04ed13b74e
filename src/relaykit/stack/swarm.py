"""A private Docker Swarm on loopback, for the stack's integration test and for anyone who
wants to try a generated stack.yml on one machine without touching the host's engine.

A second dockerd with its own data-root, exec-root, socket and pid file; no iptables, no
NAT, no docker0.  Everything it addresses is on TEST-NET-3 (RFC 5737): the gateway bridge
Swarm attaches tasks to (created by us before `swarm init`, else Docker picks a private
range on the host) and the overlay address pool.  DNS goes nowhere (`--dns 127.0.0.1`).
Tasks are reached with nsenter.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from relaykit.errors import RelaykitError

GATEWAY_SUBNET = "203.0.113.0/26"
GATEWAY_BRIDGE = "rkscl-gwbr"  # host interface name of docker_gwbridge (<= 15 chars)
ADDRESS_POOL = "203.0.113.128/25"
POOL_MASK = 28  # 8 overlay networks of 14 tasks each


@dataclass(frozen=True)
class Task:
    slot: int  # 0 for a global service's task
    container: str
    pid: int
    health: str  # "starting" | "healthy" | "unhealthy" | "none"
    image: str
    volumes: tuple[str, ...]

    @property
    def nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n"]


@dataclass(frozen=True)
class SwarmEngine:
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def docker(self, *args: str, stdin: bytes | None = None, check: bool = True,
               timeout: float = 180.0) -> str:
        proc = subprocess.run(["docker", *args], env=self.env, input=stdin,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RelaykitError(f"docker {' '.join(args[:3])} failed: "
                                f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
        return proc.stdout.decode(errors="replace")

    def tasks(self, service: str) -> list[Task]:
        """Running containers of a service, by slot."""
        ids = self.docker("ps", "-q", "--filter",
                          f"label=com.docker.swarm.service.name={service}").split()
        if not ids:
            return []
        out = []
        for info in json.loads(self.docker("inspect", *ids)):
            if not info["State"]["Running"]:
                continue
            # <service>.<slot>.<task id>; a global service's is <service>.<node id>.<id>.
            part = info["Config"]["Labels"]["com.docker.swarm.task.name"].split(".")[1]
            out.append(Task(
                slot=int(part) if part.isdigit() else 0, container=info["Id"],
                pid=int(info["State"]["Pid"]),
                health=info["State"].get("Health", {}).get("Status", "none"),
                image=info["Config"]["Image"].split("@")[0],
                volumes=tuple(m["Name"] for m in info["Mounts"] if m["Type"] == "volume")))
        return sorted(out, key=lambda t: t.slot)

    def wait_tasks(self, service: str, *, replicas: int, image: str | None = None,
                   timeout: float = 120.0) -> list[Task]:
        """Wait until `replicas` tasks run healthy (on `image`, if given)."""
        deadline = time.monotonic() + timeout
        tasks: list[Task] = []
        while time.monotonic() < deadline:
            tasks = self.tasks(service)
            ready = [t for t in tasks if t.health == "healthy"
                     and (image is None or t.image == image)]
            if len(ready) == replicas and len(tasks) == replicas:
                return tasks
            time.sleep(1)
        states = self.docker("service", "ps", "--no-trunc", service, check=False)
        raise RelaykitError(f"{service}: not {replicas} healthy task(s) after {timeout:.0f} s:"
                            f" {tasks}\n{states}")


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise RelaykitError(f"{what} did not happen in {timeout:.0f} s")


LOCK = Path("/run/relaykit-private-swarm.lock")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """One private Swarm per host: two would share the kernel's VXLAN devices and this
    module's addresses.  A second caller waits."""
    with LOCK.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def private_swarm(root: Path) -> Iterator[SwarmEngine]:
    """Start the engine, make it a single-node Swarm manager; on exit remove everything
    it made: services, containers, volumes, its bridge, its mounts, its directory."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        raise RelaykitError("dockerd/docker not installed", hint="apt-get install docker.io")
    with _one_at_a_time():
        yield from _private_swarm(root, dockerd)


def _private_swarm(root: Path, dockerd: str) -> Iterator[SwarmEngine]:
    root.mkdir(parents=True, exist_ok=True)
    engine = SwarmEngine(root)
    log = (root / "dockerd.log").open("ab")
    proc = subprocess.Popen(
        [dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{engine.socket}",
         "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
         # Tasks resolve through Docker's embedded DNS, which forwards to the daemon's
         # servers: never the host's resolver (off the machine); refused at once instead.
         "--dns", "127.0.0.1"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        _wait(lambda: subprocess.run(["docker", "info"], env=engine.env,
                                     capture_output=True).returncode == 0, 60, "dockerd start")
        engine.docker("network", "create", "--driver", "bridge", "--subnet", GATEWAY_SUBNET,
                      "-o", f"com.docker.network.bridge.name={GATEWAY_BRIDGE}",
                      "-o", "com.docker.network.bridge.enable_icc=false",
                      "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
                      "docker_gwbridge")
        engine.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                      "--listen-addr", f"127.0.0.1:{_free_port()}",
                      "--data-path-addr", "127.0.0.1",
                      "--default-addr-pool", ADDRESS_POOL,
                      "--default-addr-pool-mask-length", str(POOL_MASK))
        yield engine
    finally:
        _teardown(engine, proc)
        log.close()


def _teardown(engine: SwarmEngine, proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(Exception):
        services = engine.docker("service", "ls", "-q", check=False, timeout=30).split()
        if services:
            engine.docker("service", "rm", *services, check=False, timeout=60)
        _wait(lambda: not engine.docker("ps", "-aq", check=False, timeout=30).strip(), 60,
              "service removal")
    with contextlib.suppress(Exception):
        engine.docker("swarm", "leave", "--force", check=False, timeout=60)
        engine.docker("network", "rm", "docker_gwbridge", check=False, timeout=30)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # Whatever the engine left behind: its bridge on the host, mounts under its root.
    subprocess.run(["ip", "link", "del", GATEWAY_BRIDGE], capture_output=True, check=False)
    for mount in reversed(_mounts_under(engine.root)):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(engine.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    return sorted(p for p in points if p.startswith(prefix))
