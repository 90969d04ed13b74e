"""The .deb's contents without dpkg: files, control, scripts (pure functions)."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit.buildinfo import BuildInputs
from relaykit.deb import DebContents, contents, pack
from relaykit.deb.package import (
    HOST_NAME_MARKER,
    fill,
    gzip_n,
    is_placeholder,
    master_line,
    package_settings,
    synopsis,
    units,
)
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
    pkg = f"relaykit-{name}"
    assert f"/etc/relaykit/{pkg}/relaykit.conf" in conffiles
    assert f"/etc/relaykit/{pkg}/tls" in c.dirs


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
    for script in ("config", "preinst", "postinst", "prerm", "postrm"):
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


# --- issue 9: packages on real servers ---------------------------------------------------

def _file(c: DebContents, path: str) -> bytes:
    return next(f.data for f in c.files if f.path == path)


@pytest.mark.parametrize("name", PROFILES)
def test_every_file_of_a_package_is_under_its_own_name(name: str) -> None:
    """Two relaykit packages (one installed, one removed but not purged) share no path,
    so purging one can never delete the other's conffiles or TLS pair."""
    _, c = _contents(name)
    pkg = f"relaykit-{name}"
    shared_ok = {"/usr/lib/relaykit/common.sh", "/usr/sbin/relaykit-sasldb-sync",
                 "/usr/share/man/man8/relaykit-sasldb-sync.8.gz",
                 "/usr/share/man/man7/relaykit.7.gz"}
    for f in c.files:
        if f.path in shared_ok or f.path.startswith(("/usr/lib/systemd/", "/lib/systemd/")):
            continue  # not conffiles: dpkg replaces them on a swap (Conflicts)
        if f.path.startswith("/etc/postfix/"):
            continue  # restriction maps at the profile's paths: the preinst guards them
        assert pkg in f.path.split("/"), f.path


def test_swap_partners_share_no_conffile() -> None:
    _, a = _contents("roaming")
    _, b = _contents("gazette-2007")
    conf = {n: set(c.control["conffiles"].decode().split()) for n, c in (("a", a), ("b", b))}
    assert not conf["a"] & conf["b"]


@pytest.mark.parametrize("name", PROFILES)
def test_conffiles_do_not_change_when_only_the_version_does(name: str) -> None:
    p = load_profile(name).profile
    assert p.deb is not None
    bumped = dataclasses.replace(p, version="9.9.9",
                                 deb=dataclasses.replace(p.deb, version="9.9.9-1"))
    one = contents(p, render(p), INPUTS, static_rootfs_dir())
    two = contents(bumped, render(bumped), INPUTS, static_rootfs_dir())
    for path in one.control["conffiles"].decode().split():
        assert _file(one, path) == _file(two, path), path
        assert b"9.9.9" not in _file(two, path)


def test_smtpd_conf_is_the_packages_own_and_postfix_is_pointed_at_it() -> None:
    _, c = _contents("roaming")
    conffiles = c.control["conffiles"].decode().split()
    assert "/etc/postfix/sasl/smtpd.conf" not in conffiles
    assert "/etc/relaykit/relaykit-roaming/sasl/smtpd.conf" in conffiles
    edits = _file(c, "/usr/share/relaykit/relaykit-roaming/main.cf.edits").decode()
    assert "cyrus_sasl_config_path = /etc/relaykit/relaykit-roaming/sasl\n" in edits
    assert "smtpd_tls_cert_file = /etc/relaykit/relaykit-roaming/tls/tls.crt\n" in edits
    conf = _file(c, "/etc/relaykit/relaykit-roaming/relaykit.conf").decode()
    assert "RELAYKIT_TLS_KEY='/etc/relaykit/relaykit-roaming/tls/tls.key'\n" in conf
    assert "/etc/default/" not in "".join(conffiles)  # no sysv saslauthd instance file


@pytest.mark.parametrize(("name", "placeholder"), [
    ("relay.example.org", True), ("antigone.luchs.example", True), ("example.com", True),
    ("[smarthost.example.net]:587", True), ("mx.test", True), ("host.invalid", True),
    ("mail.example.com.", True), ("relay.corp.net", False), ("example.co", False),
    ("[smtp.isp.fr]:587", False), ("notexample.org", False)])
def test_placeholder_names(name: str, placeholder: bool) -> None:
    assert is_placeholder(name) is placeholder


def test_placeholder_identity_comes_from_the_host() -> None:
    _, c = _contents("satellite")
    edits = _file(c, "/usr/share/relaykit/relaykit-satellite/main.cf.edits").decode()
    assert f"myhostname = {HOST_NAME_MARKER}\n" in edits
    assert "\nmydomain =" not in edits and "\nrelayhost =" not in edits  # not pinned: kept
    p = load_profile("satellite").profile
    pinned = dataclasses.replace(p, postfix=dataclasses.replace(
        p.postfix, myhostname="mail.corp.net", mydomain="corp.net"),
        outbound=dataclasses.replace(p.outbound, relayhost="[smtp.isp.net]:587"))
    settings = dict(package_settings(pinned, render(pinned)))
    assert settings["myhostname"] == "mail.corp.net"
    assert settings["mydomain"] == "corp.net"
    assert settings["relayhost"] == "[smtp.isp.net]:587"


def test_stock_table_lists_debians_defaults() -> None:
    _, c = _contents("roaming")
    stock = _file(c, "/usr/share/relaykit/relaykit-roaming/main.cf.stock").decode()
    assert "relayhost\t\n" in stock
    assert ("smtpd_relay_restrictions\tpermit_mynetworks permit_sasl_authenticated"
            " defer_unauth_destination\n") in stock


def test_preinst_guards_the_maps_it_would_ship_at_shared_paths() -> None:
    _, c = _contents("gazette-2007")
    preinst = c.control["preinst"].decode()
    assert 'FOREIGN_CONFFILES="/etc/postfix/helo /etc/postfix/rcpt_blacklist"' in preinst
    _, r = _contents("roaming")
    assert 'FOREIGN_CONFFILES=""' in r.control["preinst"].decode()


def test_debconf_question_defaults_to_refusing() -> None:
    _, c = _contents("roaming")
    templates = c.control["templates"].decode()
    assert "Template: relaykit-roaming/override-local-settings\n" in templates
    assert "Type: boolean\nDefault: false\n" in templates
    assert "debconf (>= 0.5) | debconf-2.0" in c.control["control"].decode()


@pytest.mark.parametrize("name", PROFILES)
def test_no_service_failure_is_hidden(name: str) -> None:
    _, c = _contents(name)
    postinst = c.control["postinst"].decode()
    for line in postinst.splitlines():
        if "deb-systemd-invoke" in line or "rk_postfix restart" in line:
            assert "|| true" not in line, line


def test_units_are_hardened() -> None:
    _, c = _contents("roaming")
    unit = _file(c, "/usr/lib/systemd/system/relaykit-saslauthd.service").decode()
    for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateNetwork=yes",
                "ReadWritePaths=/var/spool/postfix/var/run/saslauthd",
                "EnvironmentFile=/etc/relaykit/relaykit-roaming/saslauthd"):
        assert key + "\n" in unit


@pytest.mark.parametrize("name", PROFILES)
def test_maintainer_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    """POSIX sh, warnings and errors (SC2034: the shared helpers define variables not
    every script uses)."""
    assert shutil.which("shellcheck"), "shellcheck not installed (run ./bootstrap)"
    _, c = _contents(name)
    for script in ("config", "preinst", "postinst", "prerm", "postrm"):
        path = tmp_path / script
        path.write_bytes(c.control[script])
        proc = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", "-e", "SC2034",
                               str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
