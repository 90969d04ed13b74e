"""The .deb's contents without dpkg: files, control, scripts (pure functions)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit.buildinfo import BuildInputs
from relaykit.deb import contents, pack
from relaykit.deb.package import fill, gzip_n, master_line, synopsis, units
from relaykit.errors import RelaykitError
from relaykit.paths import static_rootfs_dir
from relaykit.profile.load import load_profile
from relaykit.render.postfix import render

PROFILES = ("roaming", "gazette-2007", "satellite")
INPUTS = BuildInputs(epoch=1767225600, base_epoch=1767225600, revision="0" * 40,
                     mirror=None, cache_dir=Path("/nonexistent"))


def _contents(name: str):  # type: ignore[no-untyped-def]
    p = load_profile(name).profile
    return p, contents(p, render(p), INPUTS, static_rootfs_dir())


@pytest.mark.parametrize("name", PROFILES)
def test_never_ships_main_or_master_cf_nor_image_only_files(name: str) -> None:
    _, c = _contents(name)
    paths = {f.path for f in c.files}
    assert not {"/etc/postfix/main.cf", "/etc/postfix/master.cf"} & paths
    assert "/usr/lib/relaykit/common.sh" in paths
    assert not any(p.endswith(("/entrypoint", "/healthcheck")) for p in paths)
    assert not any(p.endswith((".key", ".pem")) for p in paths)  # no private key shipped


@pytest.mark.parametrize("name", PROFILES)
def test_conffiles_are_exactly_the_etc_files(name: str) -> None:
    _, c = _contents(name)
    conffiles = c.control["conffiles"].decode().splitlines()
    assert conffiles == sorted(f.path for f in c.files if f.path.startswith("/etc/"))
    assert "/etc/relaykit/relaykit.conf" in conffiles
    assert "/etc/relaykit/tls" in c.dirs


def test_control_fields() -> None:
    p, c = _contents("roaming")
    control = c.control["control"].decode()
    assert "Package: relaykit-roaming\n" in control
    assert "Architecture: all\n" in control
    depends = next(line for line in control.splitlines() if line.startswith("Depends:"))
    for dep in ("postfix", "sasl2-bin", "libsasl2-modules", "openssl", "ca-certificates",
                "adduser"):
        assert dep in depends
    assert f"Maintainer: {p.deb.maintainer}\n" in control
    assert "Provides: relaykit-relay\nConflicts: relaykit-relay\n" in control


@pytest.mark.parametrize("name", PROFILES)
def test_scripts_are_posix_sh_and_fully_filled(name: str) -> None:
    _, c = _contents(name)
    for script in ("postinst", "prerm", "postrm"):
        text = c.control[script].decode()
        assert text.startswith("#!/bin/sh\n")
        assert "set -e" in text
        assert "@" not in text.replace("$@", "")  # no placeholder left
        if shutil.which("dash"):
            subprocess.run(["dash", "-n"], input=text, text=True, check=True)


def test_units_follow_the_sasl_backend() -> None:
    assert units(load_profile("roaming").profile) == ("relaykit-saslauthd.service",)
    assert units(load_profile("gazette-2007").profile) == ("relaykit-sasldb-sync.path",)
    assert units(load_profile("satellite").profile) == ()
    _, c = _contents("gazette-2007")
    assert any(f.path == "/usr/sbin/relaykit-sasldb-sync" and f.mode == 0o755 for f in c.files)


def test_master_entries_are_one_line_for_postconf_M() -> None:
    p = load_profile("roaming").profile
    entry = render(p).listeners[0]
    line = master_line(entry)
    assert "\n" not in line
    assert line.startswith("submission inet n - y - - smtpd -o ")
    assert "-o { smtpd_client_restrictions = permit_sasl_authenticated, reject }" in line


def test_md5sums_cover_every_file() -> None:
    _, c = _contents("gazette-2007")
    listed = {line.split("  ", 1)[1] for line in c.control["md5sums"].decode().splitlines()}
    assert listed == {f.path.lstrip("/") for f in c.files}


def test_gzip_n_is_deterministic_and_nameless() -> None:
    a, b = gzip_n(b"hello\n"), gzip_n(b"hello\n")
    assert a == b and gzip.decompress(a) == b"hello\n"
    assert a[4:8] == b"\0\0\0\0"  # MTIME zero
    assert a[3] & 0x08 == 0  # no FNAME


def test_synopsis_policy() -> None:
    assert synopsis("The 2007 setup.") == "2007 setup"
    with pytest.raises(RelaykitError):
        synopsis("x" * 90)


def test_fill_refuses_leftover_placeholders() -> None:
    assert fill("a @X@", {"X": "b"}) == "a b"
    with pytest.raises(RelaykitError):
        fill("a @Y@", {"X": "b"})


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_pack_twice_is_byte_identical(tmp_path: Path) -> None:
    _, c = _contents("roaming")
    one = pack(c, tmp_path / "a" / "x.deb", INPUTS.epoch).read_bytes()
    two = pack(c, tmp_path / "b" / "x.deb", INPUTS.epoch).read_bytes()
    assert one == two
