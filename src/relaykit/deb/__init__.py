"""The .deb backend: package contents (package.py), packing (build.py), and a
throwaway-root install test (verify.py, root.py)."""

from __future__ import annotations

from relaykit.deb.build import pack
from relaykit.deb.package import DebContents, DebFile, contents

__all__ = ["DebContents", "DebFile", "contents", "pack"]
