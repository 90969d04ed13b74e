"""The installed relaykit, for real: a wheel built from the clone, installed in a fresh
virtualenv, run from a directory that is not the clone.

What it proves: the wheel carries schema/, profiles/ and rootfs/ (without them
`validate` finds no profile and the image has no entrypoint), the `relaykit` command
works with nothing of the clone on sys.path, output goes to ./build, and the image it
builds is byte for byte the one the clone builds (the base comes from the shared cache:
same cache key).  Needs the package index for the wheel's dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relaykit import commands
from relaykit.paths import DATA_DIRS, cache_dir

from ..conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What a wheel build needs from the clone (a source tree without tests, docs, .git).
SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SOURCE_DIRS = ("src", *DATA_DIRS)  # what setup.py copies into the wheel, and the code
# Same inputs on both sides, so both builds must give the same digest.
PINNED_INPUTS = {"SOURCE_DATE_EPOCH": "1764000000", "RELAYKIT_REVISION": "rk-cli-wheel-test"}


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # outside the clone: where the user runs relaykit
    env: dict[str, str]

    def run(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "relaykit"), *args], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, timeout=timeout)


def _check(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"


def _user_env(cache: Path) -> dict[str, str]:
    """A user's environment: nothing pointing into the clone."""
    dropped = ("PYTHONPATH", "RELAYKIT_HOME", "RELAYKIT_BUILD_DIR", "VIRTUAL_ENV",
               "RELAYKIT_DEBUG", "RELAYKIT_VERBOSE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT)))
    env["RELAYKIT_CACHE_DIR"] = str(cache)  # the shared base cache
    return {**env, **PINNED_INPUTS}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """relaykit-*.whl built by pip from a copy of the clone's sources."""
    tree = tmp_path_factory.mktemp("rk-cli-source")
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, tree / name)
    for name in SOURCE_DIRS:
        shutil.copytree(ROOT / name, tree / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "_data"))
    dist = tmp_path_factory.mktemp("rk-cli-dist")
    # PYTHONPATH would show pip the clone's relaykit: the user's environment has none.
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
            str(tree)], _user_env(cache_dir()))
    (built,) = dist.glob("relaykit-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    venv = tmp_path_factory.mktemp("rk-cli-venv")
    # The system Python: the venv must not see the clone's environment.
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None, "python3 not found (bootstrap installs python3-venv)"
    env = _user_env(cache_dir())
    _check([python, "-m", "venv", str(venv)], env)
    _check([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], env)
    workdir = tmp_path_factory.mktemp("rk-cli-user")
    yield Installed(venv, workdir, env)
    shutil.rmtree(venv, ignore_errors=True)


def test_wheel_carries_the_data_and_the_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("schema", "profiles", "rootfs"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / top).rglob("*")
                   if p.is_file()}
        assert {f"relaykit/_data/{p}" for p in shipped} <= names, top
    assert "relaykit/py.typed" in names
    assert not any(n.startswith(("tests/", "relaykit/tests")) for n in names)
    modes = {i.filename: i.external_attr >> 16 for i in zipfile.ZipFile(wheel).infolist()}
    assert modes["relaykit/_data/rootfs/usr/lib/relaykit/entrypoint"] & 0o111


def test_installed_relaykit_runs_outside_the_clone(installed: Installed) -> None:
    where = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                            "import relaykit.paths as p; print(p.__file__, p.data_dir())"],
                           cwd=installed.workdir, env=installed.env, capture_output=True,
                           text=True, timeout=60)
    module, data = where.stdout.split()
    assert module.startswith(str(installed.venv)) and data.startswith(str(installed.venv))

    helped = installed.run("--help")
    assert helped.returncode == 0, helped.stderr
    assert "validate" in helped.stdout and "build" in helped.stdout

    valid = installed.run("validate", "--profile", "roaming")
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(str(installed.venv))  # the shipped profile's path
    assert "profile 'roaming' is valid" in valid.stdout

    listed = installed.run("profiles")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "gazette-2007", "roaming", "satellite"]

    # Tasks that need a clone say so, in one line.
    docs = installed.run("docs")
    assert docs.returncode == 1
    assert "needs a relaykit clone" in docs.stderr and "Traceback" not in docs.stderr


def test_installed_relaykit_builds_the_same_image_as_the_clone(
        installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = installed.run("build", "--profile", "roaming", "--format", "oci")
    assert built.returncode == 0, built.stderr
    out = installed.workdir / "build" / "roaming"
    archive = out / "roaming.oci.tar"
    assert archive.is_file(), sorted(installed.workdir.rglob("*"))
    with tarfile.open(archive) as tar:
        assert "index.json" in tar.getnames() and "manifest.json" in tar.getnames()

    # The clone, with the same inputs, gives the same bytes.
    for name, value in PINNED_INPUTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYKIT_CACHE_DIR", installed.env["RELAYKIT_CACHE_DIR"])
    logged: list[str] = []
    commands.build("roaming", fmt="oci", log=logged.append)
    # Right after the installed build, the clone's base is a cache hit: same cache key.
    assert any(line.startswith("base trixie/") and ": cached " in line for line in logged), logged
    ours = json.loads((tmp_path / "roaming" / "roaming.oci.json").read_text())
    theirs = json.loads((out / "roaming.oci.json").read_text())
    assert theirs["digest"] == ours["digest"]
