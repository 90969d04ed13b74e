"""Profiles an attacker would write (issue 7's classes): each is refused with exit 2 and
FILE:LINE: .path: message; and the legitimate variants next to them still validate.

Each security case here fails on the pre-issue-7 policy (git 9c254ca) unless marked
`also_before`: the report lists which were checked against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaykit.errors import Level, ProfileError, RelaykitError
from relaykit.profile.load import load_profile
from relaykit.render.postfix import render

from ..conftest import ROOT

BASE = "extends: roaming\nname: t\n"


def diagnostics(tmp_path: Path, text: str, name: str = "p.yaml") -> list:  # type: ignore[type-arg]
    path = tmp_path / name
    path.write_text(text)
    try:
        load_profile(str(path))
    except ProfileError as exc:
        return list(exc.diagnostics)
    return []


def refused(tmp_path: Path, text: str, code: str, path: str | None = None) -> None:
    found = diagnostics(tmp_path, text)
    errors = [d for d in found if d.level is Level.ERROR]
    hits = [d for d in errors if d.code == code and (path is None or d.path == path)]
    assert hits, "\n".join(d.format() for d in found) or "accepted"
    for d in hits:
        assert d.file.endswith("p.yaml") and d.line >= 1 and d.message


def accepted(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    loaded = load_profile(str(path))
    render(loaded.profile)  # renders without complaint too


# --- master.cf option injection through restriction arguments -------------------------

INJECTIONS = [
    "check_client_access hash:/etc/postfix/x}",
    "check_client_access hash:/etc/postfix/x_}_-o_mynetworks=0.0.0.0/0",
    "check_client_access {hash:/etc/postfix/x}",
    "check_client_access -o",
    "check_helo_access static:{OK}",
    "reject_rbl_client zen.example.org}",
    "reject_rbl_client {zen.example.org",
    "reject_rhsbl_sender -o",
    "check_policy_service inet:127.0.0.1:10023}",
    "check_policy_service unix:private/x}",
    "sleep 1}",
    "sleep -o",
    "permit_mynetworks }",
    "permit_mynetworks -o",
    "reject_unauth_destination mynetworks=0.0.0.0/0",
    "check_client_access hash:$mynetworks",
    "check_client_access hash:/etc/postfix/../shadow",
    "check_client_access cidr:/etc/postfix/x",
    "check_client_access proxy:unix:passwd.byname",
]


@pytest.mark.parametrize("item", INJECTIONS)
def test_listener_argument_cannot_reach_master_cf(tmp_path: Path, item: str) -> None:
    text = BASE + ("listeners:\n  - {name: submission, port: 587, tls: starttls-required,"
                   f" auth: true, relay_restrictions: [permit_sasl_authenticated, '{item}',"
                   " reject_unauth_destination]}\n")
    found = [d for d in diagnostics(tmp_path, text) if d.level is Level.ERROR]
    assert any(d.path == ".listeners[0].relay_restrictions[1]" for d in found), found


# --- mynetworks judged as a whole ------------------------------------------------------

def _nets(items: list[str]) -> str:
    return BASE + "postfix:\n  mynetworks: [" + ", ".join(f"'{n}'" for n in items) + "]\n"


@pytest.mark.parametrize("nets", [
    [f"{a}.{b}.0.0/16" for a in (10, 11) for b in range(256)],  # two /8s in /16 pieces
    ["10.0.0.0/9", "10.128.0.0/9", "11.0.0.0/9"],
    [f"{a}.0.0.0/8" for a in range(1, 3)],
    ["[2001:db8::]/33", "[2001:db8:8000::]/33", "[2001:db9::]/33"],
    ["[::ffff:0.0.0.0]/97"],  # IPv4-mapped: half of IPv4
    ["[::ffff:10.0.0.0]/104", "[::ffff:11.0.0.0]/104"],  # mapped /8s add up too
    ["10.0.0.0/8", "[::ffff:11.0.0.0]/104"],  # one plain, one mapped
    ["[::]/80"],  # covers ::ffff:0:0/96, all IPv4-mapped addresses
    ["127.0.0.0/8", "[::ffff:0.0.0.0]/104", "[::ffff:1.0.0.0]/112"],  # loopback is free
])
def test_mynetworks_union_is_measured_in_addresses(tmp_path: Path, nets: list[str]) -> None:
    refused(tmp_path, _nets(nets), "open-relay")


def test_mynetworks_host_bits_are_refused(tmp_path: Path) -> None:
    refused(tmp_path, _nets(["10.0.0.1/8"]), "bad-network", ".postfix.mynetworks[0]")


# --- access-map answers read as Postfix does -----------------------------------------

def _relay_map(answer: str, restriction: str = "check_sender_access") -> str:
    return BASE + ("restrictions:\n  relay: [permit_sasl_authenticated, "
                   f"{restriction} hash:/etc/postfix/m, reject_unauth_destination]\n"
                   f"  maps:\n    m: {{entries: {{x.example: '{answer}'}}}}\n")


@pytest.mark.parametrize("answer", [
    "reject_non_fqdn_sender permit", "permit", "OK", "ok", "RELAY", "12345", "450",
    "permit_mx_backup", "permit_naked_ip_address", "reject_unknown_sender_domain permit",
    "OK trusted", "permit_tls_all_clientcerts",
])
def test_ok_like_map_answers_before_the_relay_decision(tmp_path: Path, answer: str) -> None:
    refused(tmp_path, _relay_map(answer), "open-relay", ".restrictions.relay[1]")


def test_one_ok_entry_among_rejects_is_enough(tmp_path: Path) -> None:
    text = BASE + ("restrictions:\n  relay: [permit_sasl_authenticated, check_helo_access"
                   " hash:/etc/postfix/m, reject_unauth_destination]\n  maps:\n    m:\n"
                   "      entries: {a.example: REJECT, b.example: DUNNO, c.example: OK,"
                   " d.example: DISCARD}\n")
    refused(tmp_path, text, "open-relay", ".restrictions.relay[1]")


@pytest.mark.parametrize("answer", ["200 ok", "250 fine", "FILTER smtp:[192.0.2.1]",
                                    "REDIRECT a@example.org", "check_client_access",
                                    "reject_rbl_client", "bogus", "PREPEND"])
def test_unknown_map_answers_are_refused(tmp_path: Path, answer: str) -> None:
    refused(tmp_path, _relay_map(answer), "map-answer",
            ".restrictions.maps.m.entries.x.example")


@pytest.mark.parametrize("item", ["check_client_access static:OK",
                                  "check_helo_access static:RELAY",
                                  "check_sender_access static:permit",
                                  "check_recipient_access static:12"])
def test_static_maps_answer_for_everybody(tmp_path: Path, item: str) -> None:
    text = BASE + (f"restrictions:\n  relay: [permit_sasl_authenticated, '{item}',"
                   " reject_unauth_destination]\n")
    refused(tmp_path, text, "open-relay", ".restrictions.relay[1]")


def test_static_reject_first_is_not_a_relay(tmp_path: Path) -> None:
    accepted(tmp_path, BASE + "restrictions:\n  relay: [permit_sasl_authenticated,"
             " check_client_access static:REJECT, permit]\n")


def test_warn_if_reject_neutralises_the_relay_decision(tmp_path: Path) -> None:
    text = BASE + ("restrictions:\n  relay: [permit_sasl_authenticated, warn_if_reject,"
                   " reject_unauth_destination]\n")
    refused(tmp_path, text, "open-relay", ".restrictions.relay")


def test_open_relay_through_the_recipient_stage(tmp_path: Path) -> None:
    text = BASE + ("restrictions:\n  relay: [permit_sasl_authenticated, permit]\n"
                   "  recipient: [permit_auth_destination, permit]\n")
    refused(tmp_path, text, "open-relay", ".restrictions.relay[1]")


def test_each_listener_is_judged_after_its_override(tmp_path: Path) -> None:
    text = BASE + ("listeners:\n"
                   "  - {name: submission, port: 587, tls: starttls-required, auth: true}\n"
                   "  - {name: lan, port: 2525, tls: starttls, auth: false,"
                   " relay_restrictions: [reject_non_fqdn_sender, permit]}\n")
    refused(tmp_path, text, "open-relay", ".listeners[1].relay_restrictions[1]")


def test_main_relay_list_is_judged_when_every_listener_overrides_it(tmp_path: Path) -> None:
    text = BASE + ("restrictions:\n  relay: [permit]\n"
                   "listeners:\n  - {name: submission, port: 587, tls: starttls-required,"
                   " auth: true, relay_restrictions: [permit_sasl_authenticated,"
                   " reject_unauth_destination]}\n")
    refused(tmp_path, text, "open-relay", ".restrictions.relay[0]")


# --- main_cf: an allowlist -------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("smtpd_upstream_proxy_protocol", "haproxy"),
    ("relay_clientcerts", "hash:/etc/postfix/certs"),
    ("smtpd_tls_protocols", "'>=TLSv1'"),
    ("smtp_sasl_security_options", "''"),
    ("smtpd_tls_mandatory_ciphers", "null"),
    ("broken_sasl_auth_clients", "yes"),
    ("message_size_limit", "99999999999"),
    ("compatibility_level", "0"),
    ("smtpd_authorized_xclient_hosts", "0.0.0.0/0"),
    ("smtpd_relay_restrictions", "permit"),
    ("smtpd_tls_auth_only", "no"),
    ("soft_bounce", "yes"),
    ("some_unknown_parameter", "1"),
    ("maillog_file", "/etc/passwd"),
])
def test_main_cf_cannot_weaken_what_relaykit_writes(tmp_path: Path, key: str,
                                                    value: str) -> None:
    found = diagnostics(tmp_path, BASE + f"postfix:\n  main_cf: {{{key}: {value}}}\n")
    assert any(d.path == f".postfix.main_cf.{key}" and d.level is Level.ERROR
               for d in found), found


# --- free text given a grammar ---------------------------------------------------------

@pytest.mark.parametrize("override,path", [
    ("tls:\n  protocols: '>=TLSv1'\n", ".tls.protocols"),
    ("tls:\n  protocols: nonsense\n", ".tls.protocols"),
    ("tls:\n  protocols: '!SSLv2, !SSLv3'\n", ".tls.protocols"),
    ("sasl:\n  users_file: /etc/shadow\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /run/secrets/../../etc/shadow\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /run/secrets/..\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /run/secrets/a/../b\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /run/secretsx/users\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /etc/relaykit/../shadow\n", ".sasl.users_file"),
    ("outbound:\n  credentials_file: /etc/passwd\n", ".outbound.credentials_file"),
    ("sasl:\n  users_file: /etc/relaykit/relaykit.conf\n", ".sasl.users_file"),
    ("sasl:\n  users_file: /run/secrets/tls.key\n"
     "tls:\n  cert_file: /run/secrets/tls.crt\n  key_file: /run/secrets/tls.key\n",
     ".tls.key_file"),
    ("tls:\n  cert_file: /etc/ssl/private/k.pem\n  key_file: /etc/ssl/private/k.pem\n",
     ".tls.cert_file"),
    ("tls:\n  cert_file: /run/secrets/c\n  key_file: /etc/shadow\n", ".tls.key_file"),
    ("postfix:\n  message_size_limit: 99999999999999999999\n", ".postfix.message_size_limit"),
    ("postfix:\n  message_size_limit: 9223372036854775808\n", ".postfix.message_size_limit"),
    ("postfix:\n  mydestination: ['$relay_domains']\n", ".postfix.mydestination[0]"),
    ("postfix:\n  inet_interfaces: ['all, 192.0.2.1']\n", ".postfix.inet_interfaces[0]"),
    ("sasl:\n  realm: 'a b'\n", ".sasl.realm"),
    ("outbound:\n  credentials_key: 'x y'\n", ".outbound.credentials_key"),
    ("outbound:\n  relayhost: '[$mynetworks]:25'\n", ".outbound.relayhost"),
    ("outbound:\n  relayhost: '[a,b]'\n", ".outbound.relayhost"),
    ("restrictions:\n  relay: ['check_client_access " + "x" * 400 + "']\n",
     ".restrictions.relay[0]"),
])
def test_free_text_has_a_grammar(tmp_path: Path, override: str, path: str) -> None:
    found = diagnostics(tmp_path, BASE + override)
    assert any(d.path == path and d.level is Level.ERROR for d in found), found


# --- YAML ------------------------------------------------------------------------------

YAML_CASES = {
    "tag-on-mapping": b"!!python/object/apply:os.system\n  args: [id]\nname: t\n",
    "tag-on-sequence": b"name: t\nlisteners: !!python/tuple\n  - a\n",
    "python-name": b"name: !!python/name:os.system\n",
    "binary": b"name: !!binary aGVsbG8=\n",
    "local-tag": b"name: !local x\n",
    "set": b"name: !!set {a: null}\n",
    "nul": b"name: t\ndescription: \"a\x00b\"\n",
    "raw-nul": b"name: t\x00\n",
    "not-utf8": b"name: t\ndescription: caf\xe9\n",
    "self-alias": b"a: &a [1, *a]\n",
    "undefined-alias": b"a: *nope\n",
    "deep": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep-block": b"".join(b"  " * i + b"k:\n" for i in range(200)) + b"  " * 200 + b"v\n",
    "two-documents": b"name: a\n---\nname: b\n",
    "merge-key": b"a: &x {b: 1}\nc:\n  <<: *x\n",
    "bomb": (b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
             b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
             b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
             b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"),
    "control": b"name: \"\\x01\"\nraw: a\x07b\n",
    "too-big": b"name: t\n" + b"#" * 1_000_001 + b"\n",
}


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_hostile_yaml_is_exit_2_with_file_and_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(YAML_CASES[name])
    start = time.monotonic()
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert time.monotonic() - start < 5
    assert info.value.exit_code == 2
    d = info.value.diagnostics[0]
    assert d.file.endswith("p.yaml") and d.line >= 1 and d.level is Level.ERROR


def test_extends_of_a_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_bytes(b"name: p\ndescription: \xff\xfe\n")
    child = tmp_path / "p.yaml"
    child.write_text("extends: parent.yaml\nname: c\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(child))
    assert info.value.diagnostics[0].format().startswith(f"{tmp_path / 'parent.yaml'}:2: ") \
        or info.value.diagnostics[0].file.endswith("parent.yaml")
    assert info.value.diagnostics[0].line == 2


@pytest.mark.parametrize("name", ["tag-on-mapping", "nul", "not-utf8", "self-alias", "deep",
                                  "bomb"])
def test_cli_prints_no_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(YAML_CASES[name])
    proc = subprocess.run([sys.executable, "-m", "invoke", "validate", "--profile",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{path}:" in proc.stderr or "p.yaml:" in proc.stderr, proc.stderr


# --- legitimate variants -------------------------------------------------------------

LEGITIMATE = {
    "lan-24": BASE + "postfix:\n  mynetworks: [127.0.0.0/8, '[::1]/128', 192.0.2.0/24]\n",
    "two-lans": BASE + "postfix:\n  mynetworks: [127.0.0.0/8, 10.0.0.0/9, 10.128.0.0/9]\n",
    "mx-beside-submission": BASE + (
        "postfix:\n  mydestination: [$myhostname, example.org, localhost]\n"
        "listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: false}\n"
        "  - {name: submission, port: 587, tls: starttls-required, auth: true,"
        " client_restrictions: [permit_sasl_authenticated, reject]}\n"
        "  - {name: submissions, port: 465, tls: implicit, auth: true,"
        " client_restrictions: [permit_sasl_authenticated, reject]}\n"),
    "satellite-465": "extends: satellite\nname: t\noutbound:\n"
                     "  relayhost: '[smtp.example.net]:465'\n  tls_level: encrypt\n",
    "rbl": BASE + ("restrictions:\n  recipient: [permit_sasl_authenticated,"
                   " reject_unauth_destination, reject_rbl_client zen.spamhaus.org,"
                   " reject_rbl_client bl.example.org=127.0.0.2,"
                   " reject_rhsbl_sender dbl.example.org, permit_dnswl_client"
                   " list.dnswl.example]\n"),
    "map-actions": BASE + (
        "restrictions:\n  relay: [permit_sasl_authenticated, check_client_access"
        " hash:/etc/postfix/clients, check_sender_access texthash:/etc/postfix/senders,"
        " reject_unauth_destination]\n  maps:\n    clients:\n      entries:\n"
        "        192.0.2.66: REJECT spam source\n        198.51.100.7: DISCARD\n"
        "        203.0.113.9: HOLD\n        192.0.2.67: '550 5.7.1 go away'\n"
        "        192.0.2.68: DEFER try later\n        192.0.2.69: 'PREPEND X-Seen: yes'\n"
        "        192.0.2.70: DUNNO\n        192.0.2.71: WARN odd client\n"
        "        192.0.2.72: reject_unauth_destination\n"
        "        192.0.2.73: permit_sasl_authenticated\n"
        "    senders: {type: texthash, entries: {spam@example.net: REJECT,"
        " '450': DEFER}}\n"),
    "ipv6-only": BASE + (
        "postfix:\n  inet_protocols: ipv6\n  mynetworks: ['[::1]/128', '[2001:db8::]/48']\n"
        "listeners:\n  - {name: submission, port: 587, tls: starttls-required, auth: true,"
        " address: '2001:db8::25'}\n"),
    "main-cf-allowed": BASE + (
        "postfix:\n  main_cf: {smtpd_banner: '$myhostname ESMTP relay', smtpd_timeout: 30s,"
        " smtpd_soft_error_limit: 10, smtputf8_enable: false,"
        " notify_classes: 'resource, software', maximal_queue_lifetime: 2d}\n"),
    "policy-after-relay-decision": BASE + (
        "restrictions:\n  recipient: [permit_sasl_authenticated, reject_unauth_destination,"
        " check_policy_service inet:127.0.0.1:10023]\n"),
    "whitelist-after-relay-decision": BASE + (
        "restrictions:\n  recipient: [permit_sasl_authenticated, reject_unauth_destination,"
        " check_recipient_access hash:/etc/postfix/ok]\n"
        "  maps:\n    ok: {entries: {example.org: OK}}\n"),
    "secrets": BASE + ("sasl:\n  users_file: /etc/relaykit/users\n"
                       "tls:\n  cert_file: /run/secrets/tls.crt\n"
                       "  key_file: /run/secrets/tls.key\n"),
    "tls13": BASE + "tls:\n  protocols: '>=TLSv1.3'\n",
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_legitimate_variants_validate(tmp_path: Path, name: str) -> None:
    accepted(tmp_path, LEGITIMATE[name])


def test_satellite_465_speaks_tls_from_the_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(LEGITIMATE["satellite-465"])
    main = dict(render(load_profile(str(path)).profile).main_settings)
    assert main["smtp_tls_wrappermode"] == "yes"
    assert main["smtp_tls_security_level"] == "encrypt"
    satellite = dict(render(load_profile("satellite").profile).main_settings)
    assert satellite["smtp_tls_wrappermode"] == "no"


def test_satellite_465_without_mandatory_tls_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "extends: satellite\nname: t\noutbound:\n  relayhost: "
            "'[smtp.example.net]:465'\n  sasl: false\n  tls_level: may\n", "outbound-wrapper",
            ".outbound.tls_level")


# --- any bytes at all: a clear error, never a traceback --------------------------------

ROAMING = (ROOT / "profiles" / "roaming.yaml").read_bytes()
MUTATIONS = [b"{", b"}", b"[", b"]", b"&a ", b"*a", b"!!python/object ", b"\x00", b"\xff",
             b"<<: ", b"---\n", b"  ", b"\n", b": ", b"- ", b"'", b'"', b"!x ", b"\t", b"%",
             b"? ", b"|\n", b"> ", b"1e400", b"0x1", b"~", b".inf", b"2026-01-01"]


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(ROAMING)), st.sampled_from(MUTATIONS)),
                      min_size=1, max_size=4),
       noise=st.binary(max_size=64))
def test_mangled_profiles_fail_cleanly(tmp_path: Path, edits: list[tuple[int, bytes]],
                                       noise: bytes) -> None:
    data = ROAMING
    for at, text in sorted(edits, reverse=True):
        data = data[:at] + text + data[at:]
    for i, body in enumerate((data, data + noise, noise)):
        path = tmp_path / f"m{i}.yaml"
        path.write_bytes(body)
        start = time.monotonic()
        try:
            loaded = load_profile(str(path))
        except ProfileError as exc:
            assert exc.exit_code == 2 and exc.diagnostics
            assert all(d.line >= 1 and d.file for d in exc.diagnostics)
        except RelaykitError as exc:
            assert exc.message
        else:
            render(loaded.profile)
        assert time.monotonic() - start < 5


def test_extends_chain_shares_the_size_limit(tmp_path: Path) -> None:
    from relaykit.profile.yamlsrc import MAX_BYTES

    pad = "#" * (MAX_BYTES // 2 + 10) + "\n"
    (tmp_path / "parent.yaml").write_text("extends: roaming\nname: p\n" + pad)
    child = tmp_path / "p.yaml"
    child.write_text("extends: parent.yaml\nname: c\n" + pad)
    with pytest.raises(ProfileError) as info:
        load_profile(str(child))
    assert "together" in info.value.diagnostics[0].message
    child.write_text("extends: parent.yaml\nname: c\n")
    assert load_profile(str(child)).profile.name == "c"
