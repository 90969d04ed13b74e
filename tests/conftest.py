"""Shared fixtures: where the project is, and a scratch build dir per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "build"
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(out))
    return out


def is_root() -> bool:
    return os.geteuid() == 0
