"""Where the project's data lives: schema/, profiles/, rootfs/ at the repository top."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The relaykit checkout (RELAYKIT_HOME overrides, e.g. for an installed copy)."""
    env = os.environ.get("RELAYKIT_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def schema_file() -> Path:
    return project_root() / "schema" / "profile.schema.json"


def profiles_dir() -> Path:
    return project_root() / "profiles"


def static_rootfs_dir() -> Path:
    return project_root() / "rootfs"


def locks_dir() -> Path:
    """The committed package locks, one per suite and architecture (RELAYKIT_LOCKS_DIR)."""
    env = os.environ.get("RELAYKIT_LOCKS_DIR")
    return Path(env) if env else project_root() / "locks"


def build_dir() -> Path:
    return Path(os.environ.get("RELAYKIT_BUILD_DIR", project_root() / "build"))


def cache_dir() -> Path:
    """RELAYKIT_CACHE_DIR, else $XDG_CACHE_HOME/relaykit, else ~/.cache/relaykit."""
    env = os.environ.get("RELAYKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "relaykit"
