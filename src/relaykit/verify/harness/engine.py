"""Start a Docker engine for tests and verify, the loopback-only way.

--bridge=none and --iptables=false: no docker0, no private-range addresses, no NAT;
containers run with --network none and are reached through their own namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from relaykit.errors import RelaykitError

SOCKET = Path("/var/run/docker.sock")
# A started engine outlives whoever started it (it is shared): it must not carry the
# environment of a test session (its temp dir, its session marker), or it would look
# like something that session leaked.
_NOT_INHERITED = ("TMPDIR", "RELAYKIT_TEST_SESSION", "RELAYKIT_NET_PREFIX")


def engine_up() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True).returncode == 0


def ensure_dockerd(log_file: Path = Path("/var/log/relaykit-dockerd.log"),
                   timeout: float = 60.0) -> None:
    if engine_up():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RelaykitError("dockerd is not installed", hint="apt-get install docker.io")
    argv = [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false"]
    if _knows_ip6tables(dockerd):
        argv.append("--ip6tables=false")
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    with log_file.open("ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd="/",
                         env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_up():
            return
        time.sleep(0.5)
    raise RelaykitError(f"dockerd did not come up in {timeout:.0f} s", hint=f"see {log_file}")


def _knows_ip6tables(dockerd: str) -> bool:
    out = subprocess.run([dockerd, "--help"], capture_output=True, text=True).stdout
    return "--ip6tables" in out
