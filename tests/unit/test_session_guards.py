"""The suite's own guards, met the way a developer or CI meets them: a child pytest
session under this conftest. No silent skips under CI=true; anything a test leaves
behind fails the session, is listed, and is removed."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..child import child, run
from ..leftovers import find

SKIPS = """\
import pytest

def test_skips_in_body():
    pytest.skip("frobnicator not installed")

@pytest.mark.skipif(True, reason="needs the gizmo")
def test_skips_by_marker():
    pass

def test_passes():
    pass
"""

MODULE_SKIP = """\
import pytest
pytest.skip("whole module: no widget", allow_module_level=True)
"""

LEAKS = """\
import subprocess, tempfile

def test_leaks_a_process_and_a_temp_dir():
    d = tempfile.mkdtemp(prefix="forgotten-")
    subprocess.Popen(["sleep", "300"], cwd=d)
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_outside_ci_a_skip_passes_and_says_why(tmp_path: Path) -> None:
    c = child([_write(tmp_path, "test_skips.py", SKIPS)], ci=False)
    proc = run(c)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frobnicator not installed" in proc.stdout and "needs the gizmo" in proc.stdout
    assert "1 passed, 2 skipped" in proc.stdout
    # A clean session says nothing about leftovers and removes its temp root.
    assert "LEFT BEHIND" not in proc.stdout
    assert not c.marks.root.exists()


def test_under_ci_every_skip_is_a_failure_with_its_reason(tmp_path: Path) -> None:
    proc = run(child([_write(tmp_path, "test_skips.py", SKIPS)], ci=True))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "skipped under CI=true, which is a failure: frobnicator not installed" in out
    assert "skipped under CI=true, which is a failure: needs the gizmo" in out
    assert "skipped" not in out.splitlines()[-1] and "1 passed" in out.splitlines()[-1]


def test_under_ci_a_skipped_module_is_a_failure(tmp_path: Path) -> None:
    files = [_write(tmp_path, "test_module_skip.py", MODULE_SKIP),
             _write(tmp_path, "test_ok.py", "def test_ok():\n    pass\n")]
    assert run(child(files, ci=False)).returncode == 0
    proc = run(child(files, ci=True))
    assert proc.returncode != 0 and "whole module: no widget" in proc.stdout, proc.stdout


def test_a_leaked_process_and_temp_dir_fail_the_session_and_are_removed(tmp_path: Path
                                                                         ) -> None:
    c = child([_write(tmp_path, "test_leaks.py", LEAKS)], ci=False)
    proc = run(c)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "LEFT BEHIND by this test session" in proc.stdout
    assert "sleep" in proc.stdout and "forgotten-" in proc.stdout
    assert not find(c.marks), find(c.marks).report()
    assert not c.marks.root.exists()

