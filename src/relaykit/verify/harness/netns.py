"""Test networks that never leave the machine: a client namespace joined to a
container's namespace by a veth pair, TEST-NET-2 addresses, no routes anywhere else.

This is how a client "outside the relay's trusted networks" is made without a Docker
bridge or any private-range address.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TEST_NET = "198.51.100"  # RFC 5737 TEST-NET-2: documentation only, routed nowhere

# Every namespace and veth made here starts with one prefix, so whoever made them can
# find what is left: `rk` for a verify run; the test suite exports its session's own
# prefix (tests/conftest.py) and fails if anything with it survives the session.
PREFIX_ENV = "RELAYKIT_NET_PREFIX"
DEFAULT_PREFIX = "rk"
# Linux interface names hold 15 bytes: prefix + 1 role letter + 6 hex digits.
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}")


def name_prefix() -> str:
    prefix = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"{PREFIX_ENV}={prefix!r}: want 1-8 lowercase letters/digits")
    return prefix


def _ip(*args: str, pid: int | None = None) -> None:
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid is not None else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Link:
    namespace: str  # the client's named namespace, for `ip netns exec`
    server_address: str  # inside the container's namespace
    client_address: str

    @property
    def runner(self) -> list[str]:
        """argv prefix that runs a command as the outside client."""
        return ["ip", "netns", "exec", self.namespace]


@contextmanager
def client_link(container_pid: int, *, server_host: int = 1, client_host: int = 2
                ) -> Iterator[Link]:
    """A fresh client namespace wired to the container's namespace by a veth pair."""
    tag = secrets.token_hex(3)
    prefix = name_prefix()
    ns, outside, inside = f"{prefix}n{tag}", f"{prefix}c{tag}", f"{prefix}s{tag}"
    link = Link(ns, f"{TEST_NET}.{server_host}", f"{TEST_NET}.{client_host}")
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", str(container_pid))
        _ip("link", "set", outside, "netns", ns)
        _ip("-n", ns, "addr", "add", f"{link.client_address}/24", "dev", outside)
        _ip("-n", ns, "link", "set", outside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("addr", "add", f"{link.server_address}/24", "dev", inside, pid=container_pid)
        _ip("link", "set", inside, "up", pid=container_pid)
        yield link
    finally:
        # Deleting the namespace deletes its veth end, and with it the peer; if setup
        # failed before the end moved there, it is still here: delete it too.
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", outside], capture_output=True, check=False)


@contextmanager
def joined(pid_a: int, pid_b: int, *, host_a: int = 1, host_b: int = 2) -> Iterator[Link]:
    """Two containers' namespaces joined by a veth pair (the satellite -> relay chain)."""
    tag = secrets.token_hex(3)
    prefix = name_prefix()
    a, b = f"{prefix}a{tag}", f"{prefix}b{tag}"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        _ip("link", "set", a, "netns", str(pid_a))
        _ip("link", "set", b, "netns", str(pid_b))
        _ip("addr", "add", f"{TEST_NET}.{host_a}/24", "dev", a, pid=pid_a)
        _ip("addr", "add", f"{TEST_NET}.{host_b}/24", "dev", b, pid=pid_b)
        _ip("link", "set", a, "up", pid=pid_a)
        _ip("link", "set", b, "up", pid=pid_b)
        yield Link("", f"{TEST_NET}.{host_a}", f"{TEST_NET}.{host_b}")
    finally:
        # Deleting one end deletes the pair, wherever setup got to.
        subprocess.run(["nsenter", "-t", str(pid_a), "-n", "ip", "link", "delete", a],
                       capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", a], capture_output=True, check=False)
