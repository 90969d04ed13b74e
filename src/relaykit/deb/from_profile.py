"""The .deb backend (issue #4): build/<name>/<package>_<version>_all.deb."""

from __future__ import annotations

import time
from pathlib import Path

from relaykit.buildinfo import BuildInputs
from relaykit.deb import contents, pack
from relaykit.deb.package import deb_output
from relaykit.paths import static_rootfs_dir
from relaykit.profile.model import Profile
from relaykit.render.postfix import Rendered
from relaykit.ui import Log


def deb_filename(p: Profile) -> str:
    deb = deb_output(p)
    version = deb.version.split(":", 1)[-1]  # the epoch is not part of the file name
    return f"{deb.package}_{version}_all.deb"


def build_deb(p: Profile, rendered: Rendered, inputs: BuildInputs, out_dir: Path, *,
              log: Log) -> Path:
    """Build the package into out_dir (the staging dir) and return its path."""
    start = time.monotonic()
    c = contents(p, rendered, inputs, static_rootfs_dir())
    path = pack(c, out_dir / deb_filename(p), inputs.epoch)
    log(f"deb {path.name}: {path.stat().st_size / 1024:.1f} KiB, {len(c.files)} files"
        f" in {time.monotonic() - start:.2f} s")
    return path
