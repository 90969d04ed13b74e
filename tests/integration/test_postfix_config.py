"""Debian's real Postfix judges every rendered shipped profile: no warnings, and the
effective values are the ones the profile asked for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit.profile.load import load_profile
from relaykit.render.postfix import render
from relaykit.render.tree import write_tree

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix not installed"),
]

SHIPPED = ["roaming", "satellite", "gazette-2007"]


@pytest.fixture(params=SHIPPED)
def config_dir(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    name: str = request.param
    write_tree(render(load_profile(name).profile).tree, tmp_path)
    return name, tmp_path / "etc/postfix"


def postconf(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["postconf", "-c", str(conf), *args], capture_output=True,
                          text=True, check=True)


def test_postconf_reads_without_warnings(config_dir: tuple[str, Path]) -> None:
    _, conf = config_dir
    for args in (["-n"], ["-M"], ["-P"]):
        proc = postconf(conf, *args)
        assert proc.stderr == "", proc.stderr
        assert proc.stdout


def test_postfix_check_is_clean(config_dir: tuple[str, Path]) -> None:
    _, conf = config_dir
    proc = subprocess.run(["postfix", "-c", str(conf), "check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_effective_values_are_the_profiles(config_dir: tuple[str, Path]) -> None:
    name, conf = config_dir
    p = load_profile(name).profile
    effective = {k.strip(): v.strip() for k, _, v in
                 (line.partition("=") for line in postconf(conf, "-n").stdout.splitlines())}
    assert effective["myhostname"] == p.postfix.myhostname
    assert effective["cyrus_sasl_config_path"] == "/etc/postfix/sasl"
    assert "reject_unauth_destination" in effective["smtpd_relay_restrictions"]
    services = postconf(conf, "-P").stdout
    for lis in p.listeners:
        assert f"/inet/smtpd_sasl_auth_enable = {'yes' if lis.auth else 'no'}" in services
    if p.sasl is not None:
        assert effective["smtpd_sasl_security_options"].startswith("noanonymous")
        assert effective["smtpd_sasl_local_domain"] == p.sasl.realm
    if p.outbound.sasl:
        assert effective["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"


def test_roaming_submission_ports_as_rfc_8314_wants(tmp_path: Path) -> None:
    write_tree(render(load_profile("roaming").profile).tree, tmp_path)
    conf = tmp_path / "etc/postfix"
    services = postconf(conf, "-P").stdout.splitlines()
    assert "submission/inet/smtpd_tls_security_level = encrypt" in services
    assert "submissions/inet/smtpd_tls_wrappermode = yes" in services
    assert "submission/inet/smtpd_client_restrictions = permit_sasl_authenticated, reject" \
        in services
    # Port 25 is not served by the roaming relay at all.
    assert not any(line.startswith("smtp/inet") for line in services)


def test_a_bad_parameter_is_caught_by_the_same_check(tmp_path: Path) -> None:
    """The check above can fail: an obsolete parameter makes postconf warn."""
    write_tree(render(load_profile("roaming").profile).tree, tmp_path)
    conf = tmp_path / "etc/postfix"
    with (conf / "main.cf").open("a") as f:
        f.write("smtpd_sasl_application_name = smtpd\n")
    proc = postconf(conf, "-n")
    assert "unused parameter: smtpd_sasl_application_name" in proc.stderr


def _variant(tmp_path: Path, name: str) -> Path:
    from ..unit.test_hostile_profiles import LEGITIMATE

    profile = tmp_path / f"{name}.yaml"
    profile.write_text(LEGITIMATE[name])
    write_tree(render(load_profile(str(profile)).profile).tree, tmp_path / "root")
    return tmp_path / "root/etc/postfix"


LEGITIMATE_NAMES = ["lan-24", "mx-beside-submission", "satellite-465", "rbl", "map-actions",
                    "ipv6-only", "main-cf-allowed", "policy-after-relay-decision", "tls13"]


@pytest.mark.parametrize("name", LEGITIMATE_NAMES)
def test_legitimate_variants_read_cleanly(tmp_path: Path, name: str) -> None:
    conf = _variant(tmp_path, name)
    for args in (["-n"], ["-P"], ["-M"]):
        proc = postconf(conf, *args)
        assert proc.stderr == "", proc.stderr


def test_satellite_465_is_wrapper_mode_for_postfix(tmp_path: Path) -> None:
    conf = _variant(tmp_path, "satellite-465")
    effective = {k.strip(): v.strip() for k, _, v in
                 (line.partition("=") for line in postconf(conf, "-n").stdout.splitlines())}
    assert effective["smtp_tls_wrappermode"] == "yes"
    assert effective["smtp_tls_security_level"] == "encrypt"
    assert effective["relayhost"] == "[smtp.example.net]:465"


@pytest.mark.parametrize("name", SHIPPED)
def test_tls_floor_and_excluded_suites_as_postfix_reads_them(name: str, tmp_path: Path) -> None:
    write_tree(render(load_profile(name).profile).tree, tmp_path)
    conf = tmp_path / "etc/postfix"
    effective = {k.strip(): v.strip() for k, _, v in
                 (line.partition("=") for line in postconf(conf, "-n").stdout.splitlines())}
    for key in ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols", "smtp_tls_protocols",
                "smtp_tls_mandatory_protocols"):
        assert effective[key] == ">=TLSv1.2"
    for key in ("smtpd_tls_exclude_ciphers", "smtpd_tls_mandatory_exclude_ciphers",
                "smtp_tls_exclude_ciphers", "smtp_tls_mandatory_exclude_ciphers"):
        assert {"aNULL", "eNULL"} <= {w.strip() for w in effective[key].split(",")}
    limit = int(effective["message_size_limit"])
    assert int(effective["mailbox_size_limit"]) >= limit


def test_largest_message_size_is_one_postfix_accepts(tmp_path: Path) -> None:
    """The schema's maximum, rendered, passes `postfix check` (a value past the C long
    range makes it fail, which is what made the container exit at start)."""
    profile = tmp_path / "p.yaml"
    profile.write_text("extends: roaming\nname: t\npostfix:\n  message_size_limit: 1073741824\n")
    write_tree(render(load_profile(str(profile)).profile).tree, tmp_path / "root")
    conf = tmp_path / "root/etc/postfix"
    ok = subprocess.run(["postfix", "-c", str(conf), "check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    with (conf / "main.cf").open("a") as f:
        f.write("message_size_limit = 9223372036854775808\n")
    bad = subprocess.run(["postfix", "-c", str(conf), "check"], capture_output=True, text=True)
    assert bad.returncode != 0
