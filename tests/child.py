"""Run a child pytest session under the suite's own conftest, to test the suite's guards
(no silent skips, nothing left behind) the way a developer or CI meets them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .leftovers import Marks

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Child:
    marks: Marks  # what the child session will mark its things with
    argv: list[str]
    env: dict[str, str]


def child(test_files: Sequence[Path], *, ci: bool, extra: Sequence[str] = ()) -> Child:
    """A child pytest over `test_files` with this suite's conftest as a plugin."""
    sid = "c" + secrets.token_hex(1)  # 3 characters, like a session's own
    marks = Marks(sid, Path(tempfile.gettempdir()) / f"rkt{sid}")
    env = {**os.environ, "RELAYKIT_TEST_SID": sid, "PYTHONPATH": str(ROOT / "src")}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    # Files outside tests/ do not see its conftest: load it as a plugin for them.
    outside = any(not Path(f).resolve().is_relative_to(ROOT / "tests") for f in test_files)
    plugin = ["-p", "tests.conftest"] if outside else []
    argv = [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider",
            "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
            *extra, *map(str, test_files)]
    return Child(marks, argv, env)


def run(c: Child, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(c.argv, env=c.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
