"""Build inputs that are not in the profile: time stamps, revision, mirror, cache.

Kept apart from the profile (user intent) so the same profile and the same
inputs give the same artifacts, byte for byte.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from relaykit import debian, paths
from relaykit.errors import RelaykitError
from relaykit.paths import checkout

# The base layer's clamp time: fixed, so a new commit does not invalidate the cached
# base (a config-only change rebuilds only the overlay).  RELAYKIT_BASE_EPOCH overrides.
DEFAULT_BASE_EPOCH = debian.BASE_EPOCH


@dataclass(frozen=True)
class BuildInputs:
    epoch: int  # SOURCE_DATE_EPOCH for the overlay, the image config, the package
    base_epoch: int
    revision: str
    mirror: str | None
    cache_dir: Path


def _git(*args: str) -> str | None:
    root = checkout()  # installed from a wheel: no revision (never the cwd's repository)
    if root is None:
        return None
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _epoch_from(name: str, value: str) -> int:
    try:
        epoch = int(value)
    except ValueError:
        raise RelaykitError(f"{name}={value!r} is not a Unix time stamp",
                            hint="use seconds since 1970, e.g. $(git log -1 --format=%ct)"
                            ) from None
    if epoch <= 0:
        # lintian flags epoch-0 files, and 1970 dates confuse tools that compare times.
        raise RelaykitError(f"{name} must be > 0", hint="use the last commit's time")
    return epoch


@cache
def _head() -> tuple[str, int] | None:
    """(commit id, commit time) of HEAD, from one git call."""
    out = _git("log", "-1", "--format=%H %ct")
    if out is None:
        return None
    commit, _, stamp = out.partition(" ")
    return commit, int(stamp)


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else the base epoch."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return _epoch_from("SOURCE_DATE_EPOCH", env)
    head = _head()
    return head[1] if head else DEFAULT_BASE_EPOCH


def revision() -> str:
    head = _head()
    return os.environ.get("RELAYKIT_REVISION") or (head[0] if head else "unknown")


def build_inputs(*, mirror: str | None, cache_dir: Path | None) -> BuildInputs:
    base_env = os.environ.get("RELAYKIT_BASE_EPOCH")
    base_epoch = _epoch_from("RELAYKIT_BASE_EPOCH", base_env) if base_env else DEFAULT_BASE_EPOCH
    return BuildInputs(
        epoch=source_date_epoch(),
        base_epoch=base_epoch,
        revision=revision(),
        mirror=mirror or os.environ.get("RELAYKIT_MIRROR") or None,
        cache_dir=cache_dir or paths.cache_dir(),
    )


# uname -m -> dpkg architecture, for the common cases (dpkg answers the others).
_DPKG_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386",
              "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}


@cache
def host_architecture() -> str:
    machine = platform.machine()
    if machine in _DPKG_ARCH:
        return _DPKG_ARCH[machine]
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "amd64"
