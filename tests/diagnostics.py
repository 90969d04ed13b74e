"""What validation says of a profile written as text: for tests and the golden answers."""

from __future__ import annotations

from pathlib import Path

from relaykit.errors import Diagnostic, ProfileError
from relaykit.profile.load import load_profile


def profile_diagnostics(tmp_path: Path, text: str) -> list[Diagnostic]:
    """Every error and warning of a profile written as text (empty: valid and silent)."""
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return list(load_profile(str(path)).warnings)
    except ProfileError as exc:
        return list(exc.diagnostics)
