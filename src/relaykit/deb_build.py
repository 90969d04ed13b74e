"""The .deb backend (issue #4): not built yet."""

from __future__ import annotations

from pathlib import Path

from .buildinfo import BuildInputs
from collections.abc import Callable

Log = Callable[[str], None]
from .errors import RelaykitError
from .model import Profile
from .render import Rendered


def build_deb(p: Profile, rendered: Rendered, inputs: BuildInputs, out_dir: Path, *,
              log: Log) -> Path:
    raise RelaykitError("the .deb format is not implemented yet",
                        hint="build the image with --format oci")
