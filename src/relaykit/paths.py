"""Where relaykit's data, output and cache live.

The data (schema/, profiles/, rootfs/) stays at the top of a clone, where it is edited;
a wheel carries a copy as the package data ``relaykit/_data/`` (setup.py copies it at
build time).  ``data_dir`` is the one lookup for both: everything else derives from it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from relaykit.errors import RelaykitError

# The top-level directories a wheel must carry (setup.py reads this list).
DATA_DIRS = ("schema", "profiles", "rootfs", "locks")
DATA_PACKAGE_DIR = "_data"  # relaykit/_data/ inside an installed package
_MARKER = Path("schema") / "profile.schema.json"


def checkout() -> Path | None:
    """The clone this code runs from, or None when relaykit is installed from a wheel.

    RELAYKIT_HOME names another tree holding schema/, profiles/ and rootfs/ (e.g. to
    try edited profiles with an installed relaykit).
    """
    env = os.environ.get("RELAYKIT_HOME")
    if env:
        home = Path(env).resolve()
        if not (home / _MARKER).is_file():
            raise RelaykitError(f"RELAYKIT_HOME={env} has no {_MARKER}",
                                hint="point it at a relaykit clone, or unset it")
        return home
    root = Path(__file__).resolve().parents[2]  # src/relaykit/paths.py -> the clone
    return root if (root / _MARKER).is_file() and (root / "src" / "relaykit").is_dir() else None


def data_dir() -> Path:
    """The directory holding schema/, profiles/, rootfs/ and locks/: the clone, else the
    wheel's."""
    root = checkout()
    if root is not None:
        return root
    shipped = resources.files("relaykit") / DATA_PACKAGE_DIR
    # A zip import would need extracting; relaykit is only installed as files.
    if not isinstance(shipped, Path) or not (shipped / _MARKER).is_file():
        raise RelaykitError(f"relaykit's data files are missing ({shipped})",
                            hint="reinstall relaykit from a wheel or run it from a clone")
    return shipped


def project_root() -> Path:
    """The clone; an error when relaykit runs installed (for tasks that need a clone)."""
    root = checkout()
    if root is None:
        raise RelaykitError("this needs a relaykit clone (it is not in the installed package)",
                            hint="run it in a clone: git clone ..., then ./bootstrap invoke ...")
    return root


def schema_file() -> Path:
    return data_dir() / "schema" / "profile.schema.json"


def profiles_dir() -> Path:
    return data_dir() / "profiles"


def static_rootfs_dir() -> Path:
    return data_dir() / "rootfs"


def locks_dir() -> Path:
    """The committed package locks, one per suite and architecture (RELAYKIT_LOCKS_DIR);
    an installed relaykit carries the ones it was built with."""
    env = os.environ.get("RELAYKIT_LOCKS_DIR")
    return Path(env) if env else data_dir() / "locks"


def build_dir() -> Path:
    """RELAYKIT_BUILD_DIR, else build/ in the clone, else ./build when installed."""
    env = os.environ.get("RELAYKIT_BUILD_DIR")
    if env:
        return Path(env)
    root = checkout()
    return (root if root is not None else Path.cwd()) / "build"


def cache_dir() -> Path:
    """RELAYKIT_CACHE_DIR, else $XDG_CACHE_HOME/relaykit, else ~/.cache/relaykit."""
    env = os.environ.get("RELAYKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "relaykit"
