"""Rendering cannot be talked into a different config: master.cf option guards, control
characters, parameters once, per-listener overrides where they belong, file modes.

Written to kill the mutants of render/postfix.py that survived the other unit tests
(`invoke mutation`); profiles here use features the shipped ones (and so the golden
files) do not: bind addresses, odd ports, per-listener relay lists, IPv6-only, 465
smarthosts, texthash maps.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.profile.load import load_profile
from relaykit.profile.model import Profile
from relaykit.render import postfix
from relaykit.render.postfix import MasterEntry, Rendered, render

ROAMING = "extends: roaming\nname: t\n"
SATELLITE = "extends: satellite\nname: t\n"


def profile(tmp_path: Path, text: str) -> Profile:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_profile(str(path)).profile


def rendered(tmp_path: Path, text: str) -> Rendered:
    return render(profile(tmp_path, text))


def runtime(r: Rendered) -> dict[str, str]:
    """relaykit.conf as the entrypoint's shell reads it."""
    text = r.tree.text(postfix.RUNTIME_CONF)
    out = subprocess.run(["sh", "-c", f"{text}\nset"], capture_output=True, text=True,
                         check=True, env={}).stdout
    values = {}
    for line in out.splitlines():
        key = line.partition("=")[0]
        if key.startswith("RELAYKIT_"):
            values[key] = subprocess.run(["sh", "-c", f"{line}\nprintf %s \"${key}\""],
                                         capture_output=True, text=True, check=True,
                                         env={}).stdout
    return values


# --- master.cf: nothing a value holds may leave its -o brace group --------------------

@pytest.mark.parametrize("value", [
    "permit }", "{ permit", "-o mynetworks=0.0.0.0/0", " permit", "permit ",
    "a\nb", "a\rb", "a\tb", "a\x00b", "a\x7fb", "a\x1fb",
])
def test_master_option_refuses_values_that_could_escape(value: str) -> None:
    with pytest.raises(RelaykitError):
        postfix._master_option("smtpd_relay_restrictions", value)


@pytest.mark.parametrize("key", ["Smtpd", "smtpd-x", "1smtpd", "smtpd x", "", "a}"])
def test_master_option_refuses_odd_names(key: str) -> None:
    with pytest.raises(RelaykitError):
        postfix._master_option(key, "yes")


def test_master_option_braces_only_values_with_spaces() -> None:
    assert postfix._master_option("smtpd_sasl_auth_enable", "yes") == \
        "smtpd_sasl_auth_enable=yes"
    assert postfix._master_option("smtpd_client_restrictions", "a, b ~") == \
        "{ smtpd_client_restrictions = a, b ~ }"
    # An empty list: the parameter set to nothing, still one token.
    assert postfix._master_option("smtpd_client_restrictions", "") == \
        "smtpd_client_restrictions="


def test_master_entry_refuses_a_control_character_in_its_fields() -> None:
    entry = MasterEntry("smtp\n-o x=y", "inet", "n", "-", "y", "-", "-", "smtpd")
    with pytest.raises(RelaykitError):
        entry.render()


@pytest.mark.parametrize("ch", [chr(c) for c in (*range(32), 127)])
def test_one_line_refuses_every_control_character(ch: str) -> None:
    with pytest.raises(RelaykitError):
        postfix._one_line(f"mynetworks = 127.0.0.0/8{ch}")


def test_one_line_keeps_printable_text() -> None:
    text = "".join(chr(c) for c in range(32, 127))
    assert postfix._one_line(text) == text


# --- main.cf: each parameter once, names only ------------------------------------------

def test_main_cf_refuses_a_parameter_twice(tmp_path: Path) -> None:
    p = load_profile("roaming").profile
    with pytest.raises(RelaykitError, match="twice"):
        postfix.render_main_cf(p, (("mynetworks", "0.0.0.0/0"),))


@pytest.mark.parametrize("name", ["My_param", "x-y", "1abc", "a b", ""])
def test_main_cf_refuses_what_is_not_a_parameter_name(name: str) -> None:
    p = load_profile("roaming").profile
    with pytest.raises(RelaykitError):
        postfix.render_main_cf(p, ((name, "1"),))


def test_main_cf_extra_lines_come_last() -> None:
    p = load_profile("roaming").profile
    text = postfix.render_main_cf(p, (("maillog_file", "/dev/stdout"),))
    assert text.splitlines()[-1] == "maillog_file = /dev/stdout"
    assert text.count("mynetworks = ") == 1


# --- per-listener overrides ------------------------------------------------------------

MULTI = ROAMING + """\
postfix:
  inet_interfaces: [192.0.2.10, '2001:db8::10']
listeners:
  - {name: smtp, port: 25, tls: starttls, auth: false,
     relay_restrictions: [permit_mynetworks, reject_unauth_destination]}
  - {name: submission, port: 587, tls: starttls-required, auth: true, address: 192.0.2.10}
  - {name: submissions, port: 465, tls: implicit, auth: true, address: '2001:db8::10'}
  - {name: alt, port: 2525, tls: none, auth: false,
     client_restrictions: [permit_mynetworks, reject]}
"""


def services(r: Rendered) -> dict[str, list[str]]:
    """master.cf inet services: first line -> its -o lines."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in r.tree.text("/etc/postfix/master.cf").splitlines():
        if line.startswith("  -o ") and current:
            out[current].append(line.strip())
        elif " inet " in line:
            current = line.split()[0]
            out[current] = []
        else:
            current = ""
    return out


def test_listener_services_and_overrides(tmp_path: Path) -> None:
    svc = services(rendered(tmp_path, MULTI))
    assert set(svc) == {"smtp", "192.0.2.10:submission", "[2001:db8::10]:submissions", "2525"}
    assert svc["smtp"] == [
        "-o syslog_name=postfix/smtp", "-o smtpd_tls_security_level=may",
        "-o smtpd_sasl_auth_enable=no",
        "-o { smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination }"]
    # AUTH listeners also get the abuse section's limits and sender binding (defaults).
    abuse = ["-o smtpd_client_auth_rate_limit=10", "-o smtpd_client_connection_rate_limit=30",
             "-o smtpd_client_connection_count_limit=10",
             "-o smtpd_client_message_rate_limit=60",
             "-o smtpd_client_recipient_rate_limit=200", "-o smtpd_hard_error_limit=5",
             "-o smtpd_sender_restrictions=relaykit_auth_sender"]
    assert svc["192.0.2.10:submission"] == [
        "-o syslog_name=postfix/submission", "-o smtpd_tls_security_level=encrypt",
        "-o smtpd_sasl_auth_enable=yes", *abuse]
    assert svc["[2001:db8::10]:submissions"] == [
        "-o syslog_name=postfix/submissions", "-o smtpd_tls_security_level=encrypt",
        "-o smtpd_tls_wrappermode=yes", "-o smtpd_sasl_auth_enable=yes", *abuse]
    assert svc["2525"] == [
        "-o syslog_name=postfix/alt", "-o smtpd_tls_security_level=none",
        "-o smtpd_sasl_auth_enable=no",
        "-o { smtpd_client_restrictions = permit_mynetworks, reject }"]


def test_package_edits_carry_the_same_overrides(tmp_path: Path) -> None:
    r = rendered(tmp_path, MULTI)
    keys = [e.key for e in r.listeners]
    assert keys == ["smtp/inet", "192.0.2.10:submission/inet",
                    "[2001:db8::10]:submissions/inet", "2525/inet"]
    relay = dict(r.listeners[0].options)["smtpd_relay_restrictions"]
    assert relay == "permit_mynetworks, reject_unauth_destination"


def test_healthcheck_endpoints(tmp_path: Path) -> None:
    conf = runtime(rendered(tmp_path, MULTI))
    assert conf["RELAYKIT_LISTEN_ENDPOINTS"] == (
        "192.0.2.10:25 192.0.2.10:587 [2001:db8::10]:465 192.0.2.10:2525")
    assert conf["RELAYKIT_IMPLICIT_TLS_ENDPOINTS"] == "[2001:db8::10]:465"


@pytest.mark.parametrize(("postfix_yaml", "endpoint"), [
    ("inet_interfaces: [all]", "127.0.0.1:587"),
    ("inet_interfaces: [loopback-only]", "127.0.0.1:587"),
    ("inet_interfaces: [all]\n  inet_protocols: ipv6", "[::1]:587"),
    ("inet_interfaces: [loopback-only]\n  inet_protocols: ipv6", "[::1]:587"),
    ("inet_interfaces: [192.0.2.7, all]", "127.0.0.1:587"),
    ("inet_interfaces: [192.0.2.7]", "192.0.2.7:587"),
    ("inet_interfaces: [192.0.2.7, 127.0.0.1]", "192.0.2.7:587"),
])
def test_endpoint_follows_inet_interfaces(tmp_path: Path, postfix_yaml: str,
                                          endpoint: str) -> None:
    conf = runtime(rendered(tmp_path, ROAMING + f"""\
postfix:
  {postfix_yaml}
listeners:
  - {{name: submission, port: 587, tls: starttls-required, auth: true}}
"""))
    assert conf["RELAYKIT_LISTEN_ENDPOINTS"] == endpoint


# --- runtime settings: quoted for the shell that sources them --------------------------

@pytest.mark.parametrize("value", ["plain", "it's", "'", "$(id)", "`id`", "a b", "x\\y", ""])
def test_shell_quote_round_trips(value: str) -> None:
    out = subprocess.run(["sh", "-c", f"v={postfix._shell_quote(value)}; printf %s \"$v\""],
                         capture_output=True, text=True, check=True).stdout
    assert out == value


def test_runtime_conf_values_read_back(tmp_path: Path) -> None:
    conf = runtime(rendered(tmp_path, ROAMING + """\
outbound:
  relayhost: '[smarthost.example.net]:465'
  sasl: true
  tls_level: encrypt
restrictions:
  relay: [permit_sasl_authenticated, reject_unauth_destination]
  recipient: [check_recipient_access hash:/etc/postfix/rcpt,
              check_client_access texthash:/etc/postfix/clients]
  maps:
    rcpt: {entries: {spam.example: REJECT}}
    clients: {type: texthash, entries: {192.0.2.9: REJECT}}
"""))
    assert conf["RELAYKIT_DEFAULT_RELAYHOST"] == "[smarthost.example.net]:465"
    assert conf["RELAYKIT_OUTBOUND_SASL"] == "yes"
    assert conf["RELAYKIT_SASL_BACKEND"] == "saslauthd"
    assert conf["RELAYKIT_MAPS"] == "hash:/etc/postfix/rcpt"  # texthash is not postmapped
    assert conf["RELAYKIT_SASLAUTHD_SOCKET"].endswith("/mux")


def test_smarthost_on_465_gets_wrapper_mode_and_587_does_not(tmp_path: Path) -> None:
    def main_cf(port: int) -> str:
        return rendered(tmp_path, SATELLITE + f"""\
outbound:
  relayhost: '[smarthost.example.net]:{port}'
""").tree.text("/etc/postfix/main.cf")

    assert "smtp_tls_wrappermode = yes" in main_cf(465).splitlines()
    assert "smtp_tls_wrappermode = no" in main_cf(587).splitlines()


# --- file modes: nothing writable by others, the socket dir for group sasl only --------

VARIANTS = [ROAMING, SATELLITE, "extends: gazette-2007\nname: t\n", MULTI]


@pytest.mark.parametrize("text", VARIANTS, ids=["roaming", "satellite", "gazette", "multi"])
def test_no_rendered_entry_is_writable_by_others(tmp_path: Path, text: str) -> None:
    for e in rendered(tmp_path, text).tree:
        assert e.mode & 0o022 == 0 or e.kind == "symlink", (e.path, oct(e.mode))
        assert (e.owner, e.group) in (("root", "root"), ("root", "sasl")), e.path


def test_saslauthd_socket_dir_only_with_saslauthd(tmp_path: Path) -> None:
    sock = debian.SASLAUTHD_SOCKET_DIR
    with_daemon = rendered(tmp_path, ROAMING).tree.get(sock)
    assert with_daemon is not None
    assert (with_daemon.mode, with_daemon.owner, with_daemon.group) == (0o710, "root", "sasl")
    auxprop = rendered(tmp_path, "extends: gazette-2007\nname: t\n").tree
    assert auxprop.get(sock) is None
    assert auxprop.get(postfix.SASLAUTHD_DEFAULTS) is None


def test_every_main_restriction_list_is_rendered(tmp_path: Path) -> None:
    main = rendered(tmp_path, ROAMING + """\
restrictions:
  client: [permit_mynetworks, reject_unknown_client_hostname]
  helo: [reject_invalid_helo_hostname]
  sender: [reject_non_fqdn_sender]
  recipient: [reject_non_fqdn_recipient]
""").tree.text("/etc/postfix/main.cf").splitlines()
    for line in ("smtpd_client_restrictions = permit_mynetworks, reject_unknown_client_hostname",
                 "smtpd_helo_restrictions = reject_invalid_helo_hostname",
                 "smtpd_sender_restrictions = reject_non_fqdn_sender",
                 "smtpd_recipient_restrictions = reject_non_fqdn_recipient"):
        assert line in main


def test_sasl_option_lists_are_comma_separated(tmp_path: Path) -> None:
    main = rendered(tmp_path, ROAMING + """\
sasl:
  security_options: [noanonymous, noplaintext]
  tls_security_options: [noanonymous, noactive]
outbound:
  relayhost: '[smarthost.example.net]:587'
  sasl: true
  tls_level: encrypt
  security_options: [noanonymous, noplaintext]
  tls_security_options: [noanonymous, noactive]
""").tree.text("/etc/postfix/main.cf").splitlines()
    for prefix in ("smtpd_sasl", "smtp_sasl"):
        assert f"{prefix}_security_options = noanonymous, noplaintext" in main
        assert f"{prefix}_tls_security_options = noanonymous, noactive" in main


def test_maps_render_one_entry_per_line(tmp_path: Path) -> None:
    r = rendered(tmp_path, ROAMING + """\
restrictions:
  recipient: [check_recipient_access hash:/etc/postfix/rcpt, check_client_access
              hash:/etc/postfix/clients]
  maps:
    rcpt: {entries: {spam.example: REJECT, ads.example: '550 5.7.1 no ads'}}
    clients: {entries: {192.0.2.66: DISCARD}}
""")
    body = [line for line in r.tree.text("/etc/postfix/rcpt").splitlines()
            if not line.startswith("#")]
    assert sorted(body) == ["ads.example\t550 5.7.1 no ads", "spam.example\tREJECT"]
    assert runtime(r)["RELAYKIT_MAPS"] == "hash:/etc/postfix/clients hash:/etc/postfix/rcpt"


@pytest.mark.parametrize(("key", "value"), [
    ("a b", "REJECT"), ("", "REJECT"), ("a", ""), ("a", " REJECT"), ("a", "REJECT "),
    ("a", "REJECT\nOK"), ("a\x7f", "REJECT"), ("a", "REJECT\x85"),
])
def test_map_lines_cannot_be_split(key: str, value: str) -> None:
    p = load_profile("roaming").profile
    with pytest.raises(RelaykitError):
        postfix.render_map(((key, value),), p)


def test_every_implicit_tls_endpoint_is_listed(tmp_path: Path) -> None:
    conf = runtime(rendered(tmp_path, ROAMING + """\
listeners:
  - {name: submissions, port: 465, tls: implicit, auth: true}
  - {name: alt, port: 4465, tls: implicit, auth: true}
  - {name: submission, port: 587, tls: starttls-required, auth: true}
"""))
    assert conf["RELAYKIT_IMPLICIT_TLS_ENDPOINTS"] == "127.0.0.1:465 127.0.0.1:4465"


@pytest.mark.parametrize("size", [1024, 51_200_000, 51_200_001, 1_073_741_824])
def test_the_mailbox_size_limit_in_force_is_never_below_the_message_size(
        tmp_path: Path, size: int) -> None:
    """local(8) refuses a message above mailbox_size_limit, and Postfix's own default
    (postconf -d, not relaykit's copy of it) is below the largest message sizes a
    profile may accept: relaykit must write the parameter exactly then."""
    r = rendered(tmp_path, ROAMING + f"postfix:\n  message_size_limit: {size}\n")
    main = dict(line.split(" = ", 1) for line in r.tree.text("/etc/postfix/main.cf").splitlines()
                if " = " in line and not line.startswith("#"))
    default = int(subprocess.run(["postconf", "-dh", "mailbox_size_limit"], check=True,
                                 capture_output=True, text=True).stdout)
    in_force = int(main.get("mailbox_size_limit", default))
    assert in_force == 0 or in_force >= size
    # Written only when needed: otherwise an admin's value (Debian's 0) stays.
    assert ("mailbox_size_limit" in main) is (size > default)
