"""What a test session leaves behind, found by its marks (issue 13).

A session (tests/conftest.py) gives everything it starts three marks, and this module
finds whatever still carries one:

- a temp root, exported as TMPDIR: pytest's tmp_path and every tempfile.mkdtemp land
  in it, so a process whose command line or cwd points into it is the session's (a
  Postfix master clears its environment but keeps its queue directory as cwd);
- RELAYKIT_TEST_SESSION=<sid> in the environment, inherited by every child process;
- a name prefix (RELAYKIT_NET_PREFIX) for network namespaces and veths, so names made
  by relaykit.verify.harness.netns and by the tests carry it too.

Containers are the session's when a bind mount comes from its temp root (the image
and .deb verifiers mount their secrets and resolv.conf from temp dirs) or their name
starts with the prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SESSION_ENV = "RELAYKIT_TEST_SESSION"
PREFIX_ENV = "RELAYKIT_NET_PREFIX"  # read by relaykit.verify.harness.netns
PYTEST_TEMP = "pytest-of-"  # pytest's own tmp_path tree inside the root: not a leak


@dataclass(frozen=True)
class Marks:
    sid: str  # short hex id of the session
    root: Path  # the session's TMPDIR

    @property
    def prefix(self) -> str:
        return f"rkt{self.sid}"

    def env_entry(self) -> bytes:
        return f"{SESSION_ENV}={self.sid}".encode()


@dataclass(frozen=True)
class Process:
    pid: int
    why: str
    cmdline: str


@dataclass(frozen=True)
class Leftovers:
    processes: tuple[Process, ...] = ()
    netns: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    netns_etc: tuple[Path, ...] = ()
    containers: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    temp_dirs: tuple[Path, ...] = ()
    errors: tuple[str, ...] = field(default=())  # what could not be looked at

    def __bool__(self) -> bool:
        return any((self.processes, self.netns, self.links, self.netns_etc,
                    self.containers, self.volumes, self.temp_dirs))

    def report(self) -> str:
        lines = [f"process {p.pid} ({p.why}): {p.cmdline[:160]}" for p in self.processes]
        lines += [f"network namespace {n}" for n in self.netns]
        lines += [f"network link {n}" for n in self.links]
        lines += [f"netns config dir {p}" for p in self.netns_etc]
        lines += [f"container {c}" for c in self.containers]
        lines += [f"volume {v}" for v in self.volumes]
        lines += [f"temp dir {p}" for p in self.temp_dirs]
        lines += [f"(not checked: {e})" for e in self.errors]
        return "\n".join(lines)


def find(marks: Marks, *, exclude: frozenset[int] = frozenset()) -> Leftovers:
    errors: list[str] = []
    return Leftovers(
        processes=tuple(p for p in _processes(marks) if p.pid not in exclude),
        netns=tuple(n for n in _netns_names() if n.startswith(marks.prefix)),
        links=tuple(n for n in _link_names() if n.startswith(marks.prefix)),
        netns_etc=tuple(sorted(Path("/etc/netns").glob(f"{marks.prefix}*"))),
        containers=tuple(_containers(marks, errors)),
        volumes=tuple(_volumes(marks, errors)),
        temp_dirs=tuple(_temp_dirs(marks)),
        errors=tuple(errors),
    )


# --- processes -------------------------------------------------------------------------

def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone meanwhile, or a kernel thread
        return b""


def _processes(marks: Marks) -> Iterator[Process]:
    root, me = str(marks.root), os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        cmdline = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        why = ("cwd in the session's temp root" if cwd.startswith(root) else
               "command line names the session's temp root" if root in cmdline else
               f"environment has {SESSION_ENV}" if marks.env_entry() in
               _read(f"/proc/{pid}/environ").split(b"\0") else "")
        if why:
            comm = _read(f"/proc/{pid}/comm").decode(errors="replace").strip()
            yield Process(pid, why, cmdline.strip() or f"[{comm}]")


# --- network ---------------------------------------------------------------------------

def _ip_lines(*args: str) -> list[str]:
    if shutil.which("ip") is None:
        return []
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()


def _netns_names() -> list[str]:
    return [line.split()[0] for line in _ip_lines("netns", "list") if line.strip()]


def _link_names() -> list[str]:
    # "7: rktabcc1234@if6: <...>" -> "rktabcc1234"
    return [line.split(":")[1].strip().split("@")[0] for line in _ip_lines("-o", "link", "show")
            if line.count(":") >= 2]


# --- docker ----------------------------------------------------------------------------

def _docker(*args: str) -> subprocess.CompletedProcess[str] | None:
    if shutil.which("docker") is None or not Path("/var/run/docker.sock").exists():
        return None
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None


def _listing(errors: list[str], what: str, command: str, *args: str) -> list[str] | None:
    """The words `docker COMMAND ARGS` prints; None (and `what` noted as not checked)
    when it fails, silently when no engine answers."""
    out = _docker(*command.split(), *args)
    if out is None or out.returncode != 0:
        if out is not None:
            errors.append(f"{what}: docker {command} failed")
        return None
    return out.stdout.split()


def _containers(marks: Marks, errors: list[str]) -> Iterator[str]:
    ids = _listing(errors, "containers", "ps", "-aq", "--no-trunc")
    if not ids:
        return
    inspect = _docker("inspect", *ids)
    if inspect is None:
        return
    # One removed meanwhile makes the exit status 1; the others are still printed.
    for c in json.loads(inspect.stdout or "[]"):
        name = str(c.get("Name", "")).lstrip("/")
        sources = [str(m.get("Source", "")) for m in c.get("Mounts") or []]
        if name.startswith(marks.prefix) or any(s.startswith(str(marks.root)) for s in sources):
            yield name


def _volumes(marks: Marks, errors: list[str]) -> Iterator[str]:
    yield from (v for v in _listing(errors, "volumes", "volume ls", "-q") or ()
                if v.startswith(marks.prefix))


# --- temp dirs -------------------------------------------------------------------------

def _temp_dirs(marks: Marks) -> Iterator[Path]:
    if not marks.root.is_dir():
        return
    for entry in sorted(marks.root.iterdir()):
        if not entry.name.startswith(PYTEST_TEMP):
            yield entry


# --- removing them (after they were reported) -------------------------------------------

def remove(found: Leftovers) -> None:
    """End and delete what `find` reported, so one broken test does not break the next run."""
    _kill([p.pid for p in found.processes])
    for ns in found.netns:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
    for link in found.links:
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
    for path in found.netns_etc:
        shutil.rmtree(path, ignore_errors=True)
    if found.containers:
        _docker("rm", "-f", "-v", *found.containers)
    if found.volumes:
        _docker("volume", "rm", "-f", *found.volumes)
    for path in found.temp_dirs:
        shutil.rmtree(path, ignore_errors=True)


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if _signal(pid, sig)]
        deadline = time.monotonic() + 5
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in alive if _running(pid)]
        pids = alive


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds nothing but its pid until reaped)."""
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


def _signal(pid: int, sig: signal.Signals) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
        return True
    return False
