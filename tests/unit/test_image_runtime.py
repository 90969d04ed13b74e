"""The image's runtime side without a container: the overlay's links and settings,
and the secrets-file rules of rootfs/usr/lib/relaykit/common.sh run by bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit.buildinfo import BuildInputs
from relaykit.oci import from_profile
from relaykit.profile.load import load_profile
from relaykit.render import overlay
from relaykit.render.postfix import render

from ..conftest import ROOT

COMMON = ROOT / "rootfs" / "usr" / "lib" / "relaykit" / "common.sh"


def test_overlay_links_runtime_files_into_run_and_lists_the_running_config() -> None:
    tree = overlay.image_overlay(render(load_profile("roaming").profile))
    for link, target in overlay.RUNTIME_LINKS:
        entry = tree.get(link)
        assert entry is not None and entry.kind == "symlink" and entry.target == target
        assert target.startswith(overlay.RUNTIME_DIR + "/")
    main_cf = tree.text("/etc/postfix/main.cf")
    assert main_cf.endswith("alternate_config_directories = /run/relaykit/postfix\n")


def test_healthcheck_timing_gets_healthy_within_ten_seconds() -> None:
    inputs = BuildInputs(epoch=1767225600, base_epoch=1767225600, revision="0" * 40,
                         mirror=None, cache_dir=Path("/nonexistent"))
    spec = from_profile.image_spec(load_profile("roaming").profile, inputs)
    # Docker 20.10: the first check runs one interval after start; healthy needs one
    # success.  Start-up (measured 2-8 s) plus one interval must stay under 10 s.
    assert spec.healthcheck_interval <= 2
    assert spec.healthcheck_start_period >= 10


def bash(script: str, tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "relaykit.conf"
    conf.write_text("RELAYKIT_SASLDB=/nonexistent RELAYKIT_CHROOT_SASLDB=/nonexistent\n")
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . {COMMON}; {script}"],
                          env={"RELAYKIT_CONF": str(conf), "PATH": "/usr/sbin:/usr/bin:/bin",
                               "MAIL_CONFIG": str(tmp_path)},  # postmap reads main.cf
                          input=stdin, capture_output=True, text=True)


@pytest.mark.parametrize("text,lines", [
    ("a:b\n", ["1\ta:b"]),
    ("# c\n  # indented c\n\n \t \na:b c\r\n", ["5\ta:b c"]),
    ("a:b", ["1\ta:b"]),  # no final newline
])
def test_secret_lines_keeps_data_lines(tmp_path: Path, text: str, lines: list[str]) -> None:
    (tmp_path / "f").write_text(text, newline="")
    out = bash(f"secret_lines {tmp_path / 'f'}", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == lines


@pytest.mark.parametrize("text,line", [("a:b \n", 1), ("ok:1\n a:b\n", 2), ("a:b\t\n", 1)])
def test_secret_lines_refuses_edge_whitespace(tmp_path: Path, text: str, line: int) -> None:
    (tmp_path / "f").write_text(text)
    out = bash(f"secret_lines {tmp_path / 'f'}", tmp_path)
    assert out.returncode == 64
    assert f"line {line}: space or tab at the start or end" in out.stderr
    assert "a:b" not in out.stderr  # never the line itself


@pytest.mark.skipif(shutil.which("saslpasswd2") is None or shutil.which("postmap") is None,
                    reason="needs sasl2-bin and postfix")
@pytest.mark.parametrize("extra,owners,error", [
    ("", {"alice@example.org": "alice@example.org,alice",
          "Alice@Example.ORG": "alice@example.org,alice",
          "bob@other.example": "bob@other.example", "alicexexample.org": None,
          "carol@example.org": None}, None),
    ("@shop.example alice@example.org\nsales@example.org alice,bob@other.example\n",
     {"x@shop.example": "alice@example.org", "sales@example.org": "alice,bob@other.example",
      "x@shopxexample": None, "alice@example.org": "alice@example.org,alice"}, None),
    ("alice@example.org bob@other.example\n@example.org bob@other.example\n",
     {"alice@example.org": "alice@example.org,alice,bob@other.example",
      "carol@example.org": "bob@other.example"}, None),
    ("@shop.example mallory\n", {}, "line 1: login 'mallory' is not a user"),
    ("not-an-address alice\n", {}, "line 1: expected ADDRESS LOGIN"),
])
def test_sender_logins_table(tmp_path: Path, extra: str, owners: dict[str, str | None],
                             error: str | None) -> None:
    """Built by bash, read by Postfix's own postmap: exact addresses before domains."""
    db = tmp_path / "sasldb2"
    for user, realm in (("alice", "example.org"), ("bob", "other.example")):
        subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(db), "-u", realm, user],
                       input="pw", text=True, check=True)
    (tmp_path / "extra").write_text(extra)
    (tmp_path / "main.cf").write_text("")
    out = bash(f"SASLDB={db}; build_sender_logins {tmp_path / 'table'} example.org "
               f"{tmp_path / 'extra'}", tmp_path)
    if error:
        assert out.returncode == 64 and error in out.stderr
        return
    assert out.returncode == 0, out.stderr
    for address, want in owners.items():
        got = subprocess.run(["postmap", "-c", str(tmp_path), "-q", address,
                              f"regexp:{tmp_path / 'table'}"], capture_output=True, text=True)
        assert (got.stdout.strip() or None) == want, (address, got.stderr)
    assert "pw" not in (tmp_path / "table").read_text()
