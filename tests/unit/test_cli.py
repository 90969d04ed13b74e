"""The task layer as a user runs it: exit codes, messages, and nothing written on error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT


def invoke(*args: str, build: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELAYKIT_BUILD_DIR": str(build)}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_validate_broken_profile_exits_2_with_file_line_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: roaming\nname: bad\nrestrictions:\n  relay: [permit]\n")
    build = tmp_path / "build"
    for task in ("validate", "render", "build"):
        proc = invoke(task, "--profile", str(bad), build=build)
        assert proc.returncode == 2, proc.stderr
        assert f"{bad}:4: .restrictions.relay[0]: open relay" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not build.exists()


def test_validate_json_for_ci(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    proc = invoke("validate", "--profile", str(bad), "--json", build=tmp_path / "b")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert {d["code"] for d in report["diagnostics"]} == {"required"}


def test_render_writes_overlay_and_postconf_edits(tmp_path: Path) -> None:
    build = tmp_path / "build"
    proc = invoke("render", "--profile", "roaming", build=build)
    assert proc.returncode == 0, proc.stderr
    assert (build / "roaming/rootfs/etc/postfix/main.cf").is_file()
    edits = (build / "roaming/postconf/master.cf.edits").read_text()
    assert "submission/inet/smtpd_tls_security_level = encrypt" in edits
    assert sorted(p.name for p in build.iterdir()) == ["roaming"]  # no staging leftovers


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    proc = invoke("validate", "--profile", "gazette-2007", "--strict", build=tmp_path / "b")
    assert proc.returncode == 2
    assert "warning: DIGEST-MD5 is historic" in proc.stderr


def test_show_prints_resolved_profile_with_defaults(tmp_path: Path) -> None:
    proc = invoke("show", "--profile", "roaming", build=tmp_path / "b")
    assert proc.returncode == 0
    assert "suite: trixie" in proc.stdout and "message_size_limit:" in proc.stdout


def test_profiles_lists_shipped(tmp_path: Path) -> None:
    proc = invoke("profiles", build=tmp_path / "b")
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "gazette-2007", "roaming", "satellite"]
