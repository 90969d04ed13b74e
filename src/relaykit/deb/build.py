"""Pack DebContents into a .deb with dpkg-deb, byte for byte reproducibly.

Reproducible because every input is fixed: file order (dpkg-deb sorts), owners
(--root-owner-group), modes (set here, umask ignored), times (all clamped to
SOURCE_DATE_EPOCH, which dpkg-deb also uses for the ar members), compression (xz).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from relaykit.deb.package import DebContents
from relaykit.errors import RelaykitError

SCRIPTS = frozenset({"preinst", "postinst", "prerm", "postrm", "config"})


def _write(root: Path, c: DebContents) -> None:
    for d in c.dirs:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for f in c.files:
        target = root / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)
        os.chmod(target, f.mode)
    debian = root / "DEBIAN"
    debian.mkdir()
    for name, data in c.control.items():
        (debian / name).write_bytes(data)
        os.chmod(debian / name, 0o755 if name in SCRIPTS else 0o644)


def _normalise(root: Path, epoch: int) -> None:
    """Directories 0755 and every time stamp = epoch (deepest first, so parents stay)."""
    paths = sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for path in paths:
        if path.is_dir():
            os.chmod(path, 0o755)
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.chmod(root, 0o755)
    os.utime(root, (epoch, epoch))


def pack(c: DebContents, out: Path, epoch: int) -> Path:
    """Write the .deb at out (replaced atomically)."""
    if shutil.which("dpkg-deb") is None:
        raise RelaykitError("dpkg-deb is not installed", hint="apt-get install dpkg")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".relaykit-deb-", dir=out.parent) as work:
        root = Path(work) / "root"
        root.mkdir()
        _write(root, c)
        _normalise(root, epoch)
        tmp = Path(work) / out.name
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        proc = subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", "-z9", "--build", str(root), str(tmp)],
            capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RelaykitError(f"dpkg-deb failed: {proc.stderr.strip()}")
        os.replace(tmp, out)
    return out
