"""The CI gate: a seeded sample of mutants of the relay-safety modules, 90 % killed.

Runs `invoke mutation --sample 100 --seed 14` (about 3 minutes on one core of this
machine, baseline included).  The full run and its figures: bench/results/mutation-*.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mutation import runner

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = 100
SEED = 14


def digest_sources() -> str:
    h = hashlib.sha256()
    for f in sorted((ROOT / "src").rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_sampled_mutants_are_killed(tmp_path: Path) -> None:
    before = digest_sources()
    out = tmp_path / "sample.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "mutation", f"--sample={SAMPLE}", f"--seed={SEED}",
         "--workers=1", "--quiet", f"--json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert digest_sources() == before, "the mutation run changed files under src/"
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    gated = figures["gated"]
    assert gated["mutants"] == SAMPLE
    assert gated["error"] == 0, figures["survivors"]
    assert proc.returncode == 0, (
        f"{gated['score']}% of {SAMPLE} sampled mutants killed (gate 90%); survivors:\n"
        + "\n".join(f"{s['id']}: {s['before']!r} -> {s['after']!r}"
                    for s in figures["survivors"]))
    assert gated["score"] >= 90.0


@pytest.mark.slow
def test_gate_fails_when_the_tests_are_weak(tmp_path: Path) -> None:
    """The gate can fail: with the policy and render tests taken away, the same kind of
    sample scores far below 90 % and the command exits 1."""
    weak = tmp_path / "repo"
    helpers = [f"tests/{f.name}" for f in (ROOT / "tests").glob("*.py")]  # conftest's too
    for part in ("src", "schema", "profiles", "rootfs", "locks", *helpers,
                 "tests/mutation", "tests/golden", "pyproject.toml"):
        src = ROOT / part
        dst = weak / part
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    (weak / "tests" / "unit").mkdir()
    (weak / "tests" / "unit" / "__init__.py").write_text("")
    # One honest but weak test: a shipped profile loads and renders.
    (weak / "tests" / "unit" / "test_smoke.py").write_text(
        "from relaykit.profile.load import load_profile\n"
        "from relaykit.render.postfix import render\n\n\n"
        "def test_renders() -> None:\n"
        "    assert render(load_profile('roaming').profile).tree.get('/etc/postfix/main.cf')\n")
    env = dict(os.environ, PYTHONPATH=str(weak / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.mutation.runner", "--sample=20", f"--seed={SEED}",
         "--quiet", f"--cache={tmp_path / 'cache'}"],
        cwd=weak, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAIL:" in proc.stderr and "below 90%" in proc.stderr


def test_gate_sample_fits_the_gated_files() -> None:
    pool = [m for m in runner.collect(runner.GATED)
            if m.id not in runner.load_equivalents()]
    assert len(pool) >= SAMPLE
