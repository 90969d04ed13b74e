"""Rendering: chroot-correct paths, per-backend SASL files, determinism, no secrets."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaykit.debian import SASLAUTHD_SOCKET_DIR
from relaykit.profile.load import load_profile
from relaykit.render.postfix import render
from relaykit.render.tree import write_tree

from ..conftest import ROOT

SHIPPED = ["roaming", "satellite", "gazette-2007"]


def rendered(name: str):  # type: ignore[no-untyped-def]
    return render(load_profile(name).profile)


def digest_tree(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        out[str(path.relative_to(root))] = (os.lstat(path).st_mode,
                                            hashlib.sha256(data).hexdigest())
    return out


def test_roaming_saslauthd_socket_lives_in_the_chroot() -> None:
    tree = rendered("roaming").tree
    smtpd_conf = tree.text("/etc/postfix/sasl/smtpd.conf")
    assert "pwcheck_method: saslauthd" in smtpd_conf
    # smtpd opens the socket after chroot: the in-chroot path, created below the spool.
    assert "saslauthd_path: /var/run/saslauthd/mux" in smtpd_conf
    assert "mech_list: PLAIN LOGIN" in smtpd_conf
    sock = tree.get(SASLAUTHD_SOCKET_DIR)
    assert sock is not None and (sock.mode, sock.group) == (0o710, "sasl")
    defaults = tree.text("/etc/default/saslauthd-relaykit")
    assert f'OPTIONS="-m {SASLAUTHD_SOCKET_DIR}"' in defaults
    assert "PARAMS" not in defaults.replace("PARAMS is ignored", "")


def test_gazette_auxprop_reads_sasldb_inside_the_chroot() -> None:
    tree = rendered("gazette-2007").tree
    smtpd_conf = tree.text("/etc/postfix/sasl/smtpd.conf")
    assert "pwcheck_method: auxprop" in smtpd_conf
    assert "sasldb_path: /etc/sasldb2" in smtpd_conf
    assert tree.get("/etc/default/saslauthd-relaykit") is None
    assert tree.get("/var/spool/postfix/etc") is not None
    assert "REJECT" in tree.text("/etc/postfix/rcpt_blacklist")


def test_main_cf_points_sasl_at_its_config_dir() -> None:
    main = rendered("roaming").tree.text("/etc/postfix/main.cf")
    assert "cyrus_sasl_config_path = /etc/postfix/sasl\n" in main
    assert "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, " \
           "reject_unauth_destination\n" in main


def test_satellite_relays_with_credentials_from_a_map() -> None:
    r = rendered("satellite")
    main = dict(r.main_settings)
    assert main["smtp_sasl_auth_enable"] == "yes"
    assert main["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"
    assert main["smtp_tls_security_level"] == "encrypt"
    assert main["smtp_sasl_tls_security_options"] == "noanonymous"
    assert r.tree.get("/etc/postfix/sasl_passwd") is None  # a secret: never rendered


@pytest.mark.parametrize("name", SHIPPED)
def test_no_secret_material_in_the_tree(name: str) -> None:
    for entry in rendered(name).tree:
        assert b"PRIVATE KEY" not in entry.data
        assert not entry.path.endswith(("sasldb2", "sasl_passwd", ".key"))


@pytest.mark.parametrize("name", SHIPPED)
def test_rendering_twice_is_byte_identical(name: str, tmp_path: Path) -> None:
    for out in ("a", "b"):
        write_tree(rendered(name).tree, tmp_path / out)
    assert digest_tree(tmp_path / "a") == digest_tree(tmp_path / "b")
    assert digest_tree(tmp_path / "a")  # not vacuous


def test_render_in_a_fresh_process_is_identical(tmp_path: Path) -> None:
    """Hash seeds and dict order must not leak into the output."""
    script = ("import sys; sys.path.insert(0, 'src');"
              "from pathlib import Path; from relaykit.profile.load import load_profile;"
              "from relaykit.render.postfix import render;"
              "from relaykit.render.tree import write_tree;"
              "write_tree(render(load_profile('gazette-2007').profile).tree, Path(sys.argv[1]))")
    for out, seed in (("a", "1"), ("b", "2")):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / out)], cwd=ROOT,
                       check=True, env={**os.environ, "PYTHONHASHSEED": seed})
    assert digest_tree(tmp_path / "a") == digest_tree(tmp_path / "b")


def test_healthcheck_dials_each_listener_where_it_listens(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "extends: roaming\nname: t\nlisteners:\n"
        "  - {name: submission, port: 587, tls: starttls-required, auth: true, address: '::1'}\n"
        "  - {name: submissions, port: 465, tls: implicit, auth: true}\n"
        "  - {name: lan, port: 2525, tls: starttls, auth: true, address: 192.0.2.7}\n")
    conf = render(load_profile(str(profile)).profile).tree.text("/etc/relaykit/relaykit.conf")
    assert "RELAYKIT_LISTEN_ENDPOINTS='[::1]:587 127.0.0.1:465 192.0.2.7:2525'" in conf
    assert "RELAYKIT_IMPLICIT_TLS_ENDPOINTS='127.0.0.1:465'" in conf


def test_only_hash_maps_are_postmapped(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "extends: gazette-2007\nname: t\nrestrictions:\n  maps:\n"
        "    helo: {type: texthash, entries: {localhost.localdomain: REJECT}}\n"
        "  recipient: [check_recipient_access hash:/etc/postfix/rcpt_blacklist,"
        " check_helo_access texthash:/etc/postfix/helo, permit_sasl_authenticated,"
        " reject_unauth_destination]\n")
    tree = render(load_profile(str(profile)).profile).tree
    conf = tree.text("/etc/relaykit/relaykit.conf")
    assert "RELAYKIT_MAPS='hash:/etc/postfix/rcpt_blacklist'" in conf
    assert tree.get("/etc/postfix/helo") is not None


@pytest.mark.parametrize("value", ["a }", "{ a", "-o x=y", "a}b", " a", "a ", "a\nb",
                                   "permit_mynetworks } -o { mynetworks = 0.0.0.0/0"])
def test_master_cf_option_cannot_leave_its_brace_group(value: str) -> None:
    from relaykit.errors import RelaykitError
    from relaykit.render.postfix import _master_option

    with pytest.raises(RelaykitError):
        _master_option("smtpd_relay_restrictions", value)


@pytest.mark.parametrize("key", ["Smtpd", "a b", "a=b", "{a", "-o", ""])
def test_master_cf_option_name_is_a_parameter_name(key: str) -> None:
    from relaykit.errors import RelaykitError
    from relaykit.render.postfix import _master_option

    with pytest.raises(RelaykitError):
        _master_option(key, "x")


def test_master_cf_options_render_in_braces_only_with_spaces() -> None:
    from relaykit.render.postfix import _master_option

    assert _master_option("a", "x,y") == "a=x,y"
    assert _master_option("a", "") == "a="
    assert _master_option("a", "x, y z") == "{ a = x, y z }"


@pytest.mark.parametrize("name", SHIPPED)
def test_listener_lists_are_rendered_per_listener(name: str) -> None:
    """Each listener's own lists reach master.cf (a lost override would let main.cf's
    list govern the port)."""
    p = load_profile(name).profile
    master = rendered(name).tree.text("/etc/postfix/master.cf")
    for lis in p.listeners:
        for key, items in (("smtpd_client_restrictions", lis.client_restrictions),
                           ("smtpd_relay_restrictions", lis.relay_restrictions)):
            if items is not None:
                text = ", ".join(r.render() for r in items)
                want = f"{{ {key} = {text} }}" if " " in text else f"{key}={text}"
                assert f"  -o {want}\n" in master


def test_main_cf_refuses_a_parameter_twice() -> None:
    from relaykit.errors import RelaykitError
    from relaykit.render.postfix import render_main_cf

    p = load_profile("roaming").profile
    with pytest.raises(RelaykitError):
        render_main_cf(p, (("mynetworks", "0.0.0.0/0"),))


def test_map_rendering_refuses_what_would_split_a_line() -> None:
    from relaykit.errors import RelaykitError
    from relaykit.render.postfix import render_map

    p = load_profile("roaming").profile
    for entry in (("a b", "OK"), ("a", "OK\nb OK"), ("a", " OK"), ("", "OK"), ("a", "")):
        with pytest.raises(RelaykitError):
            render_map((entry,), p)
