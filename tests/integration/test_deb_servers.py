"""The package on servers that are not fresh (issue 9), trixie and bookworm: host
identity and dpkg-reconfigure, swaps both ways with the leftover purged, install by name
from a signed repository (a forged one refused) and upgrade from it, the root as before
(piuparts-style), and an admin's own Postfix + saslauthd + smtpd.conf: refused by
roaming, adopted by gazette-2007 when preseeded, and working again (AUTH 235) after each
purge.  One booted root per suite runs every scenario in sequence.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit import commands
from relaykit.paths import cache_dir

from .deb_servers import Debs, verify_servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = ("fresh install", "fail2ban filter", "identity from the host",
         "swap both ways, purge leftovers", "swap two saslauthd packages", "signed repository",
         "root as before",
         "a failing service fails the install", "an admin's map file is not taken over",
         "over the admin's setup: refused", "over the admin's setup: adopted")


def _tools_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (docker, nsenter)"
    for tool in ("docker", "mmdebstrap", "nsenter", "gpg", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine running"
    return None


def _build(tmp: Path, name: str, suite: str, version: str | None,
           monkeypatch: pytest.MonkeyPatch, package: str | None = None) -> Path:
    text = f"extends: {name}\nbase:\n  suite: {suite}\n"
    fields = ([f"    version: {version}-1"] if version else []) + (
        [f"    package: {package}"] if package else [])
    if version is not None:
        text += f"version: {version}\n"
    if fields:
        text += "outputs:\n  deb:\n" + "".join(f"{line}\n" for line in fields)
    stem = f"{package or name}-{suite}-{version or 'base'}"
    src = tmp / f"{stem}.yaml"
    src.write_text(text)
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp / f"build-{stem}"))
    result = commands.build(str(src), fmt="deb", log=lambda _m: None)
    (deb,) = sorted(result.out_dir.glob("*.deb"))
    return deb


@pytest.mark.parametrize("suite", ["trixie", "bookworm"])
def test_package_on_servers(suite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    why = _tools_missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    debs = Debs(roaming=_build(tmp_path, "roaming", suite, None, monkeypatch),
                roaming_next=_build(tmp_path, "roaming", suite, "1.0.1", monkeypatch),
                gazette=_build(tmp_path, "gazette-2007", suite, None, monkeypatch),
                roaming2=_build(tmp_path, "roaming", suite, None, monkeypatch,
                                package="relaykit-roaming2"))
    lines: list[str] = []
    ok, table = verify_servers(suite, debs, cache_dir=cache_dir(), log=lines.append)
    assert ok, table + "\n" + "\n".join(lines)
    for step in STEPS:
        assert any(line.startswith("PASS") and f"  {step}  " in line
                   for line in table.splitlines()), f"{step} missing:\n{table}"
