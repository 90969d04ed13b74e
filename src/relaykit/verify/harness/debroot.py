"""Throwaway Debian roots that boot systemd in Docker, for installing a .deb for real.

Built once per (suite, package set, mirror) with mmdebstrap, kept as a rootfs tar in
the cache and as a local Docker image tag, so every later test only pays for `docker
run`.  The container has no network: everything the package depends on is installed
while the root is built, so `apt-get install ./pkg.deb` resolves from what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.ui import Log, complete_step

ROOT_FORMAT = 2  # bump when the recipe changes: it changes every cache key
# systemd as PID 1 (services the package enables must really start) + the package's
# Depends; postfix's debconf default ("Internet Site") is fine with no frontend.
# fail2ban for fail2ban-regex on the package's filter (its service is masked: it must not
# run, write state or ban anything in a test root).
# python3-systemd: fail2ban's journal backend (a Recommends, which mmdebstrap skips).
ROOT_PACKAGES = (*debian.TEST_ROOT_PACKAGES, "fail2ban", "python3-systemd")
MASKED_UNITS = ("fail2ban.service",)
ROOT_EPOCH = debian.BASE_EPOCH
IMAGE_REPO = "relaykit-debroot"


def root_key(suite: str, packages: tuple[str, ...], mirror: str | None) -> str:
    doc = {"format": ROOT_FORMAT, "suite": suite, "packages": sorted(set(packages)),
           "mirror": mirror}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def _image_exists(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False).returncode == 0


def _mmdebstrap(suite: str, packages: tuple[str, ...], mirror: str | None, out: Path,
                log: Log) -> None:
    if shutil.which("mmdebstrap") is None:
        raise RelaykitError("mmdebstrap is not installed", hint="apt-get install mmdebstrap")
    argv = ["mmdebstrap", "--variant=apt", "--include=" + ",".join(packages),
            "--dpkgopt=path-exclude=/usr/share/man/*", "--format=tar",
            *(f'--customize-hook=ln -sf /dev/null "$1/etc/systemd/system/{unit}"'
              for unit in MASKED_UNITS), suite, str(out)]
    if mirror:
        argv.append(mirror)  # else mmdebstrap's default (the host's apt sources)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(ROOT_EPOCH)}
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        tail = "\n".join(proc.stderr.splitlines()[-10:])
        raise RelaykitError(f"mmdebstrap {suite} failed ({proc.returncode}):\n{tail}")
    log(f"debroot {suite}: mmdebstrap {out.stat().st_size / 1e6:.0f} MB"
        f" in {time.monotonic() - start:.0f} s")


def systemd_root(suite: str, *, cache_dir: Path, mirror: str | None = None,
                 extra_packages: tuple[str, ...] = (), log: Log = print) -> str:
    """The Docker image tag of a bootable root for suite, built on first use."""
    if suite not in debian.SUITES:
        raise RelaykitError(f"no test root for suite {suite!r}",
                            hint="one of: " + ", ".join(debian.SUITES))
    packages = tuple(dict.fromkeys(ROOT_PACKAGES + extra_packages))
    key = root_key(suite, packages, mirror)
    tag = f"{IMAGE_REPO}:{suite}-{key}"
    if _image_exists(tag):
        return tag
    tar = cache_dir / "debroot" / f"{suite}-{key}.tar"
    if not tar.exists():
        tar.parent.mkdir(parents=True, exist_ok=True)
        tmp = tar.with_name(f".{tar.name}.{os.getpid()}")
        with complete_step(f"building test root {suite} (mmdebstrap)"):
            _mmdebstrap(suite, packages, mirror, tmp, log)
        os.replace(tmp, tar)
    with complete_step(f"importing test root {suite} into Docker"):
        _docker("import", str(tar), tag)
    log(f"debroot {suite}: imported as {tag}")
    return tag
