"""Relay safety, as an attacker would probe it: hostile profiles that must be refused,
and their legitimate neighbours that must not be.

Written to kill the mutants of profile/policy.py that survived the other unit tests
(`invoke mutation`): each case names the fault it catches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relaykit.errors import Diagnostic, Level
from relaykit.profile.load import load_profile

from ..diagnostics import profile_diagnostics as diagnostics

ROAMING = "extends: roaming\nname: t\n"
SATELLITE = "extends: satellite\nname: t\n"




def codes_at(found: list[Diagnostic], level: Level) -> set[tuple[str, str]]:
    return {(d.code, d.path) for d in found if d.level is level}


def errors(found: list[Diagnostic]) -> set[tuple[str, str]]:
    return codes_at(found, Level.ERROR)


def warnings(found: list[Diagnostic]) -> set[tuple[str, str]]:
    return codes_at(found, Level.WARNING)


# --- every restriction list is parsed: an unknown word is refused where it was written --

LIST_LOCATIONS = [
    ("restrictions:\n  client: [{item}]\n", ".restrictions.client[0]"),
    ("restrictions:\n  helo: [{item}]\n", ".restrictions.helo[0]"),
    ("restrictions:\n  sender: [{item}]\n", ".restrictions.sender[0]"),
    ("restrictions:\n  relay: [{item}, permit_sasl_authenticated, reject_unauth_destination]\n",
     ".restrictions.relay[0]"),
    ("restrictions:\n  recipient: [{item}]\n", ".restrictions.recipient[0]"),
    ("listeners:\n  - {{name: submission, port: 587, tls: starttls-required, auth: true,"
     " client_restrictions: [{item}]}}\n", ".listeners[0].client_restrictions[0]"),
    ("listeners:\n  - {{name: submission, port: 587, tls: starttls-required, auth: true,"
     " relay_restrictions: [{item}, permit_sasl_authenticated, reject_unauth_destination]}}\n",
     ".listeners[0].relay_restrictions[0]"),
]


@pytest.mark.parametrize(("template", "path"), LIST_LOCATIONS, ids=[p for _, p in LIST_LOCATIONS])
def test_unknown_restriction_is_refused_in_every_list(tmp_path: Path, template: str,
                                                      path: str) -> None:
    found = diagnostics(tmp_path, ROAMING + template.format(item="permit_everything_please"))
    assert ("unknown-restriction", path) in errors(found), [d.format() for d in found]


@pytest.mark.parametrize(("template", "path"), LIST_LOCATIONS, ids=[p for _, p in LIST_LOCATIONS])
def test_master_cf_injection_is_refused_in_every_list(tmp_path: Path, template: str,
                                                      path: str) -> None:
    # Closing the -o brace group and adding an override: the attacker's master.cf line.
    item = "'reject_unauth_destination } -o mynetworks=0.0.0.0/0 {'"
    found = diagnostics(tmp_path, ROAMING + template.format(item=item))
    assert any(p == path for _, p in errors(found)), [d.format() for d in found]


@pytest.mark.parametrize(("template", "path"), LIST_LOCATIONS, ids=[p for _, p in LIST_LOCATIONS])
def test_known_restriction_is_accepted_in_every_list(tmp_path: Path, template: str,
                                                     path: str) -> None:
    found = diagnostics(tmp_path, ROAMING + template.format(item="reject_unauth_pipelining"))
    assert not errors(found), [d.format() for d in found]


# --- open relay: every listener, each finding once --------------------------------------

def test_open_relay_on_a_later_listener_is_found(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls-required, auth: true}
  - {name: mx, port: 25, tls: starttls, auth: false,
     relay_restrictions: [permit_mynetworks, permit]}
""")
    assert ("open-relay", ".listeners[1].relay_restrictions[1]") in errors(found)
    assert not any(p.startswith(".listeners[0]") for _, p in errors(found))


def test_a_shared_open_list_is_reported_once(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls-required, auth: true}
  - {name: submissions, port: 465, tls: implicit, auth: true}
restrictions:
  relay: [permit_sasl_authenticated, permit]
""")
    hits = [d for d in found if d.code == "open-relay"]
    assert [d.path for d in hits] == [".restrictions.relay[1]"], [d.format() for d in hits]


@pytest.mark.parametrize(("item", "says"), [
    ("check_client_access hash:/etc/postfix/ok", "its map can answer OK"),
    ("check_policy_service inet:127.0.0.1:10023", "its answer can be OK"),
    ("permit", "`permit`"),
])
def test_open_relay_says_why_the_item_may_permit(tmp_path: Path, item: str, says: str) -> None:
    found = diagnostics(tmp_path, ROAMING + f"""\
restrictions:
  relay: ['{item}', reject_unauth_destination]
  maps:
    ok: {{entries: {{192.0.2.1: OK}}}}
""")
    hits = [d for d in found if d.code == "open-relay"]
    assert hits and says in hits[0].message, [d.format() for d in found]
    if says.startswith("`"):
        assert "its map" not in hits[0].message and "its answer" not in hits[0].message


# --- authenticated users must get through every stage, on every AUTH listener -----------

def test_sasl_order_checked_on_a_later_auth_listener(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: mx, port: 25, tls: starttls, auth: false}
  - {name: submission, port: 587, tls: starttls-required, auth: true,
     relay_restrictions: [reject_unauth_destination, permit_sasl_authenticated]}
""")
    assert ("sasl-order", ".listeners[1].relay_restrictions[0]") in errors(found)


def test_sasl_order_checked_in_the_recipient_stage(tmp_path: Path) -> None:
    # The relay list lets authenticated users through; the recipient list then refuses
    # every foreign recipient: users could not send mail out.
    found = diagnostics(tmp_path, ROAMING + """\
restrictions:
  relay: [permit_sasl_authenticated, reject_unauth_destination]
  recipient: [reject_unauth_destination]
""")
    assert ("sasl-order", ".restrictions.recipient[0]") in errors(found)


def test_sasl_order_reported_once_for_a_shared_list(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls-required, auth: true}
  - {name: submissions, port: 465, tls: implicit, auth: true}
restrictions:
  relay: [reject_unauth_destination, permit_sasl_authenticated]
""")
    assert [d.path for d in found if d.code == "sasl-order"] == [".restrictions.relay[0]"]


# --- mynetworks: the union in addresses, boundaries included ---------------------------

@pytest.mark.parametrize(("nets", "refused"), [
    (["10.0.0.0/8"], False),  # exactly the limit: a /8
    (["10.0.0.0/8", "11.0.0.0/8"], True),  # two /8: over
    (["10.0.0.0/8", "10.1.0.0/16"], False),  # overlap counted once
    (["[2001:db8::]/32"], False),  # exactly the IPv6 limit
    (["[2001:db8::]/31"], True),
    (["[2000::]/3"], True),  # no IPv6 limit at all would let this through
    (["[::]/80"], True),  # covers the IPv4-mapped range ::ffff:0:0/96: all of IPv4
    (["[::ffff:0.0.0.0]/97"], True),  # IPv4-mapped 0.0.0.0/1
    (["[::ffff:192.0.2.0]/120"], False),  # IPv4-mapped 192.0.2.0/24
])
def test_mynetworks_union_limit(tmp_path: Path, nets: list[str], refused: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: {nets}\n")
    relay = [d for d in found if d.code == "open-relay" and d.level is Level.ERROR]
    assert bool(relay) is refused, [d.format() for d in found]


def test_mynetworks_union_error_names_the_size(tmp_path: Path) -> None:
    v4 = diagnostics(tmp_path, SATELLITE + "postfix:\n  mynetworks: [10.0.0.0/7]\n")
    v6 = diagnostics(tmp_path, SATELLITE + "postfix:\n  mynetworks: ['[2001:db8::]/31']\n")
    assert any("IPv4" in d.message and "/8" in d.message for d in v4 if d.code == "open-relay")
    assert any("IPv6" in d.message and "/32" in d.message for d in v6 if d.code == "open-relay")


def test_host_bits_are_refused_and_later_entries_still_judged(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, SATELLITE + "postfix:\n  mynetworks: [192.0.2.1/24,"
                        " 0.0.0.0/1, 128.0.0.0/1]\n")
    assert ("bad-network", ".postfix.mynetworks[0]") in errors(found)
    assert ("open-relay", ".postfix.mynetworks") in errors(found)


@pytest.mark.parametrize(("net", "warned"), [
    ("8.8.0.0/16", True), ("8.8.8.0/23", True), ("8.8.8.0/24", False),
    ("10.0.0.0/16", False),  # private: not "public"
    ("[2001:4860::]/47", True), ("[2001:4860::]/48", False),
])
def test_wide_public_mynetworks_warns(tmp_path: Path, net: str, warned: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: ['{net}']\n")
    assert (("wide-mynetworks", ".postfix.mynetworks[0]") in warnings(found)) is warned


# --- listeners ------------------------------------------------------------------------

@pytest.mark.parametrize(("port", "warned"), [(587, True), (465, True), (25, False),
                                              (2525, False)])
def test_submission_port_without_auth_warns(tmp_path: Path, port: int, warned: bool) -> None:
    tls = "implicit" if port == 465 else "starttls"
    found = diagnostics(tmp_path, SATELLITE + f"""\
listeners:
  - {{name: l{port}, port: {port}, tls: {tls}, auth: false}}
""")
    hit = ("submission-no-auth", ".listeners[0].auth") in warnings(found)
    assert hit is warned, [d.format() for d in found]


def test_two_listeners_on_one_address_and_port_are_refused(tmp_path: Path) -> None:
    same = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: a, port: 587, tls: starttls-required, auth: true}
  - {name: b, port: 587, tls: starttls-required, auth: true}
""")
    assert ("listener-duplicate", ".listeners[1].port") in errors(same)
    apart = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: a, port: 587, tls: starttls-required, auth: true, address: 192.0.2.1}
  - {name: b, port: 587, tls: starttls-required, auth: true, address: 192.0.2.2}
""")
    assert not [d for d in apart if d.code == "listener-duplicate"]


# --- SASL: declared, anonymous never, no password in clear ------------------------------

def test_auth_without_sasl_is_refused_and_sasl_without_auth_warns(tmp_path: Path) -> None:
    no_sasl = diagnostics(tmp_path, SATELLITE + """\
listeners:
  - {name: smtp, port: 25, tls: none, auth: false}
  - {name: submission, port: 587, tls: starttls-required, auth: true}
""")
    assert ("sasl-missing", ".listeners[1].auth") in errors(no_sasl)
    unused = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: smtp, port: 25, tls: starttls, auth: false}
""")
    assert ("sasl-unused", ".sasl") in warnings(unused)
    assert not [d for d in diagnostics(tmp_path, ROAMING) if d.code == "sasl-unused"]


OUTBOUND = SATELLITE + "outbound:\n  relayhost: '[smarthost.example.net]:587'\n" \
    "  sasl: true\n  tls_level: encrypt\n"


@pytest.mark.parametrize("key", ["security_options", "tls_security_options"])
def test_outbound_anonymous_is_refused(tmp_path: Path, key: str) -> None:
    found = diagnostics(tmp_path, OUTBOUND + f"  {key}: [noplaintext]\n")
    assert ("noanonymous", f".outbound.{key}") in errors(found), [d.format() for d in found]


@pytest.mark.parametrize("key", ["security_options", "tls_security_options"])
def test_server_anonymous_is_refused(tmp_path: Path, key: str) -> None:
    found = diagnostics(tmp_path, ROAMING + f"sasl:\n  {key}: [noplaintext]\n")
    assert ("noanonymous", f".sasl.{key}") in errors(found)


PLAINTEXT_PORTS = ROAMING + """\
listeners:
  - {name: smtp, port: 25, tls: starttls, auth: false}
  - {name: submissions, port: 465, tls: implicit, auth: true}
  - {name: submission, port: 587, tls: starttls, auth: true}
sasl:
  auth_only_over_tls: false
"""
EXPOSED = PLAINTEXT_PORTS + "  security_options: [noanonymous]\n"


def test_plaintext_auth_found_after_listeners_that_are_fine(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, EXPOSED)
    assert ("plaintext-auth", ".listeners[2].tls") in errors(found), [d.format() for d in found]


def test_plaintext_auth_legacy_opt_in_is_a_warning(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, EXPOSED + "  allow_insecure_legacy: true\n")
    assert ("plaintext-auth", ".listeners[2].tls") in warnings(found)
    assert not [d for d in found if d.code == "plaintext-auth" and d.level is Level.ERROR]


def test_noplaintext_outside_tls_is_no_plaintext_exposure(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, PLAINTEXT_PORTS +
                        "  security_options: [noanonymous, noplaintext]\n")
    assert not [d for d in found if d.code == "plaintext-auth"], [d.format() for d in found]


def test_auth_never_offered_found_on_a_later_listener(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls-required, auth: true}
  - {name: legacy, port: 2525, tls: none, auth: true}
""")
    assert ("auth-never", ".listeners[1].tls") in errors(found)


def test_plaintext_mechanisms_disabled_inside_tls_warn(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING +
                        "sasl:\n  tls_security_options: [noanonymous, noplaintext]\n")
    assert ("dead-mechanism", ".sasl.tls_security_options") in warnings(found)


# --- outbound: credentials found, never in clear, 465 in wrapper mode ------------------

@pytest.mark.parametrize(("relayhost", "key", "ok"), [
    ("[smarthost.example.net]:587", "[smarthost.example.net]:587", True),
    ("[smarthost.example.net]:587", "smarthost.example.net", True),
    ("smarthost.example.net:587", "smarthost.example.net", True),
    ("smarthost.example.net", "smarthost.example.net", True),
    ("[smarthost.example.net]:587", "[smarthost.example.net]", False),
    ("[smarthost.example.net]:587", "other.example.net", False),
    ("smarthost.example.net:587", "smarthost.example.net:25", False),
])
def test_credentials_key_must_match_the_relayhost(tmp_path: Path, relayhost: str, key: str,
                                                  ok: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"""\
outbound:
  relayhost: '{relayhost}'
  credentials_key: '{key}'
""")
    assert (("credentials-key", ".outbound.credentials_key") in errors(found)) is not ok, \
        [d.format() for d in found]


def test_outbound_noplaintext_warns(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, OUTBOUND + "  tls_security_options: [noanonymous, noplaintext]\n")
    assert ("outbound-plaintext", ".outbound.tls_security_options") in warnings(found)
    assert not [d for d in diagnostics(tmp_path, OUTBOUND) if d.code == "outbound-plaintext"]


@pytest.mark.parametrize(("port", "level", "refused"), [
    (465, "may", True), (465, "none", True), (465, "encrypt", False), (587, "may", False),
])
def test_smarthost_on_465_needs_mandatory_tls(tmp_path: Path, port: int, level: str,
                                              refused: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"""\
outbound:
  relayhost: '[smarthost.example.net]:{port}'
  sasl: false
  tls_level: {level}
""")
    assert (("outbound-wrapper", ".outbound.tls_level") in errors(found)) is refused


# --- maps ------------------------------------------------------------------------------

def test_map_declared_with_another_type_is_refused(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
restrictions:
  recipient: [check_recipient_access hash:/etc/postfix/rcpt]
  maps:
    rcpt: {type: texthash, entries: {spam.example: REJECT}}
""")
    assert ("map-type", ".restrictions.recipient[0]") in errors(found)


def test_unused_map_warns_and_static_maps_need_no_declaration(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
restrictions:
  recipient: [check_recipient_access static:DUNNO]
  maps:
    spare: {entries: {spam.example: REJECT}}
""")
    assert ("map-unused", ".restrictions.maps.spare") in warnings(found)
    assert not [d for d in found if d.level is Level.ERROR], [d.format() for d in found]


def test_static_answer_must_be_an_access_action(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
restrictions:
  recipient: [check_recipient_access static:NOPE_NOT_AN_ACTION]
""")
    assert ("map-answer", ".restrictions.recipient[0]") in errors(found)


def test_tls_pair_names_the_missing_half(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + "tls:\n  key_file: /run/secrets/relay.key\n")
    assert ("tls-pair", ".tls.cert_file") in errors(found)


def test_control_character_in_a_map_key_is_refused(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
restrictions:
  recipient: [check_recipient_access hash:/etc/postfix/rcpt]
  maps:
    rcpt: {entries: {"spam.example\\tOK": REJECT}}
""")
    assert any(d.level is Level.ERROR and d.path.startswith(".restrictions.maps.rcpt.entries")
               for d in found), [d.format() for d in found]


@pytest.mark.parametrize(("key", "value"), [
    ("spam.example", "REJECT go\\naway"), ("spam.example", "REJECT go\\taway"),
    ("spam.example", "REJECT go\\x85away"), ("spam.example", "REJECT go\\u2028away"),
    ("spam.example", "REJECT go\\x7faway"), ("spam\\x7f.example", "REJECT"),
    ("spam\\x9f.example", "REJECT"),
])
def test_control_characters_in_map_entries_are_refused(tmp_path: Path, key: str,
                                                       value: str) -> None:
    # Map keys and answers are free text up to the schema: the policy must catch what
    # would split a line of the rendered map (YAML double-quoted escapes).
    found = diagnostics(tmp_path, ROAMING + f"""\
restrictions:
  recipient: [check_recipient_access hash:/etc/postfix/rcpt]
  maps:
    rcpt: {{entries: {{"{key}": "{value}"}}}}
""")
    hits = [d for d in found if d.level is Level.ERROR and d.code == "control-character"
            and d.path.startswith(".restrictions.maps.rcpt.entries.")]
    assert hits, [d.format() for d in found]


def test_main_cf_relay_list_is_judged_even_when_every_listener_overrides_it(
        tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls-required, auth: true,
     relay_restrictions: [permit_sasl_authenticated, reject]}
restrictions:
  relay: [permit]
""")
    hits = [d for d in found if d.code == "open-relay"]
    assert [d.path for d in hits] == [".restrictions.relay[0]"], [d.format() for d in found]
    assert "(main.cf)" in hits[0].message


@pytest.mark.parametrize(("nets", "refused"), [
    (["10.0.0.0/8", "192.0.2.1/32"], True),  # one address over the /8
    (["10.0.0.0/8", "127.0.0.0/8"], False),  # loopback is not counted
    (["10.0.0.0/8", "127.0.0.0/8", "192.0.2.1/32"], True),
    (["10.0.0.0/8", "127.0.0.0/8", "[::1]/128"], False),
])
def test_mynetworks_limit_counts_every_address_but_loopback(tmp_path: Path, nets: list[str],
                                                            refused: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: {nets}\n")
    relay = [d for d in found if d.code == "open-relay" and d.level is Level.ERROR]
    assert bool(relay) is refused, [d.format() for d in found]


def test_auth_never_is_reported_alone_and_on_every_listener(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, ROAMING + """\
listeners:
  - {name: submission, port: 587, tls: starttls, auth: true}
  - {name: legacy, port: 2525, tls: none, auth: true}
  - {name: legacy2, port: 2526, tls: none, auth: true}
sasl:
  security_options: [noanonymous]
  auth_only_over_tls: true
""")
    assert ("auth-never", ".listeners[1].tls") in errors(found)
    assert ("auth-never", ".listeners[2].tls") in errors(found)
    assert not [d for d in found if d.code == "plaintext-auth"], [d.format() for d in found]


def test_plaintext_auth_hint_names_both_ways_out(tmp_path: Path) -> None:
    hits = [d for d in diagnostics(tmp_path, EXPOSED) if d.code == "plaintext-auth"]
    assert hits and "auth_only_over_tls" in hits[0].hint and "noplaintext" in hits[0].hint


@pytest.mark.parametrize("where", [
    ("listeners", 0, "name"), ("postfix", "mynetworks", 0), ("restrictions", "relay", 0),
    ("postfix", "myhostname"), ("sasl", "realm"),
])
def test_control_character_anywhere_is_found_even_past_the_schema(
        where: tuple[str | int, ...]) -> None:
    """The schema's patterns refuse control characters first; the policy check must
    still find one at any depth (a loosened pattern must not open an injection)."""
    import copy

    from relaykit.profile import policy

    doc = copy.deepcopy(load_profile("roaming").resolved)
    node: Any = doc
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = "a\nb"
    hits = [f for f in policy.run(doc) if f.code == "control-character"]
    assert [f.path for f in hits] == [where], hits


@pytest.mark.parametrize(("text", "path", "says"), [
    ("sasl:\n  users_file: /run/secrets/relay.key\ntls:\n  cert_file: /run/secrets/relay.pem\n"
     "  key_file: /run/secrets/relay.key\n", ".tls.key_file", "already .sasl.users_file"),
    ("outbound:\n  credentials_file: /run/secrets/sasl-users\n", ".outbound.credentials_file",
     "already .sasl.users_file"),
    ("tls:\n  cert_file: /run/secrets/relay.pem\n  key_file: /run/secrets/relay.pem\n",
     ".tls.key_file", "already .tls.cert_file"),
])
def test_one_secret_file_per_role(tmp_path: Path, text: str, path: str, says: str) -> None:
    found = diagnostics(tmp_path, ROAMING + text)
    hits = [d for d in found if d.code == "secret-file"]
    assert [d.path for d in hits] == [path], [d.format() for d in found]
    assert says in hits[0].message


@pytest.mark.parametrize("name", ["sasl", "sasl_passwd", "post-install", "postfix-files",
                                  "postfix-script", "main", "master", "dynamicmaps"])
def test_map_names_that_would_replace_postfix_files_are_refused(tmp_path: Path,
                                                                name: str) -> None:
    found = diagnostics(tmp_path, ROAMING + f"""\
restrictions:
  recipient: [check_recipient_access hash:/etc/postfix/{name}]
  maps:
    {name}: {{entries: {{spam.example: REJECT}}}}
""")
    assert any(d.level is Level.ERROR and d.path.startswith(f".restrictions.maps.{name}")
               for d in found), [d.format() for d in found]


def test_ipv6_loopback_is_not_counted_as_trusted(tmp_path: Path) -> None:
    found = diagnostics(tmp_path, SATELLITE +
                        "postfix:\n  mynetworks: ['[2001:db8::]/32', '[::1]/128']\n")
    assert not [d for d in found if d.code == "open-relay"], [d.format() for d in found]


@pytest.mark.parametrize(("mech", "says"), [("DIGEST-MD5", "RFC 6331"),
                                            ("CRAM-MD5", "channel binding")])
def test_weak_mechanisms_say_why(tmp_path: Path, mech: str, says: str) -> None:
    found = diagnostics(tmp_path, "extends: gazette-2007\nname: t\n"
                        f"sasl:\n  mechanisms: [{mech}]\n")
    hits = [d for d in found if d.code == "weak-mechanism"]
    assert hits and says in hits[0].message


# A profile without restrictions.relay gets the model's default relay list.  It is safe
# today; should it ever change (a model edit, a merge), a finding on it must point where
# the user fixes it: .restrictions (there is no .restrictions.relay in the file).
NO_RELAY_LIST = """\
name: t
description: no relay list of its own
version: 1.0.0
base: {suite: trixie}
postfix: {myhostname: relay.example.org, mydomain: example.org}
listeners:
  - {name: smtp, port: 25, tls: none, auth: false}
"""


def test_the_default_relay_list_is_safe(tmp_path: Path) -> None:
    assert diagnostics(tmp_path, NO_RELAY_LIST) == []


@pytest.mark.parametrize(("default", "code", "says"), [
    ("permit", "open-relay", "`permit` lets unauthenticated clients relay"),
    ("permit_mynetworks", "open-relay", "neither the relay nor the recipient restrictions"),
    ("defer_unauth_destination", "relay-defer", "relay attempts are deferred"),
])
def test_findings_on_the_default_relay_list_point_at_restrictions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default: str, code: str,
        says: str) -> None:
    from relaykit.profile import policy
    from relaykit.profile.restrictions import parse

    monkeypatch.setattr(policy, "DEFAULT_RELAY_RESTRICTIONS", (parse(default),))
    found = [d for d in diagnostics(tmp_path, NO_RELAY_LIST) if d.code == code]
    assert [d.path for d in found] == [".restrictions"], [d.format() for d in found]
    assert says in found[0].message


def _roaming_doc(relay: list[str]) -> dict[str, Any]:
    from relaykit.paths import profiles_dir
    from relaykit.profile.load import apply_defaults, load_schema, resolve_extends

    doc = resolve_extends(profiles_dir() / "roaming.yaml", ()).data
    apply_defaults(load_schema(), doc)
    doc["restrictions"]["relay"] = relay
    return dict(doc)


def test_a_check_called_on_its_own_judges_the_document_it_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """policy.CHECKS is public (documents in, findings out): called outside policy.run,
    one after the other, a check must not judge the previous document's parsed view."""
    from relaykit.profile import policy

    monkeypatch.setattr(policy, "_current", [])  # no parsed view left behind
    safe = _roaming_doc(["permit_mynetworks", "permit_sasl_authenticated",
                         "reject_unauth_destination"])
    open_ = _roaming_doc(["permit", "reject_unauth_destination"])
    for first, second in ((safe, open_), (open_, safe)):
        for doc in (first, second, first):
            codes = [f.code for f in policy.no_open_relay(doc)]
            assert codes == (["open-relay"] if doc is open_ else []), codes


def test_a_document_changed_between_runs_is_judged_anew(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsed view is per run: the same dict, edited after a run or after a check
    called on its own, is parsed again (an editor or a test edits and re-validates)."""
    from relaykit.profile import policy

    monkeypatch.setattr(policy, "_current", [])
    doc = _roaming_doc(["permit_mynetworks", "permit_sasl_authenticated",
                        "reject_unauth_destination"])
    assert "open-relay" not in [f.code for f in policy.run(doc)]
    doc["restrictions"]["relay"] = ["permit", "reject_unauth_destination"]
    assert [f.code for f in policy.no_open_relay(doc)] == ["open-relay"]
    doc["restrictions"]["relay"] = ["reject_unauth_destination"]
    assert "open-relay" not in [f.code for f in policy.run(doc)]
    assert policy._current == []  # nothing kept once run returns


# --- mynetworks: IPv4 clients behind IPv6 prefixes ---------------------------------------
# Part of 10.0.0.0/8 written through each IPv6 prefix that carries IPv4 addresses (the
# RFCs' layouts, written out here), with how many IPv4 addresses it stands for.
IPV4_BEHIND_IPV6 = [
    ("[::ffff:a00:0]/104", 2 ** 24),  # IPv4-mapped ::ffff:0:0/96 (RFC 4291 2.5.5.2)
    ("[::ffff:0:a00:0]/104", 2 ** 24),  # IPv4-translated ::ffff:0:0:0/96 (RFC 2765 2.1)
    ("[::a00:0]/104", 2 ** 24),  # IPv4-compatible ::/96 (RFC 4291 2.5.5.1)
    ("[64:ff9b::a00:0]/104", 2 ** 24),  # NAT64 well-known 64:ff9b::/96 (RFC 6052 2.1)
    ("[2002:a00::]/32", 2 ** 16),  # 6to4 2002:V4ADDR::/48 (RFC 3056 2): 10.0.0.0/16
]


def relay_errors(found: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in found if d.code == "open-relay" and d.level is Level.ERROR]


@pytest.mark.parametrize(("net", "size"), IPV4_BEHIND_IPV6)
def test_ipv4_behind_ipv6_adds_to_the_ipv4_count(tmp_path: Path, net: str, size: int) -> None:
    """Part of 10/8 through IPv6 plus 11/8: over the limit, by exactly that part."""
    found = relay_errors(diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: "
                                     f"['{net}', 11.0.0.0/8]\n"))
    assert [d.path for d in found] == [".postfix.mynetworks"], [d.format() for d in found]
    assert f"mynetworks trusts {2 ** 24 + size} IPv4 addresses in all" in found[0].message


@pytest.mark.parametrize(("net", "size"), IPV4_BEHIND_IPV6)
def test_ipv4_behind_ipv6_is_the_same_network(tmp_path: Path, net: str, size: int) -> None:
    """Part of 10/8 through IPv6 plus 10/8 itself: one /8, at the limit, valid."""
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: ['{net}', "
                        "10.0.0.0/8]\n")
    assert [d.format() for d in found if d.level is Level.ERROR] == []


@pytest.mark.parametrize("net", ["[::ffff:c000:200]/120", "[::ffff:0:c000:200]/120",
                                 "[::c000:200]/120", "[64:ff9b::c000:200]/120",
                                 "[2002:c000:200::]/48", "[2002:c000:200::]/64"])
def test_narrow_ipv4_behind_ipv6_validates(tmp_path: Path, net: str) -> None:
    """192.0.2.0/24 (a /48 or longer of 6to4 is the one host 192.0.2.0): legitimate."""
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: ['{net}']\n")
    assert [d.format() for d in found if d.level is Level.ERROR] == []


@pytest.mark.parametrize(("net", "counted"), [
    ("[::]/128", False), ("[::1]/128", False),  # unspecified, the relay's own loopback
    ("[::2]/128", True),  # IPv4-compatible 0.0.0.2: an IPv4 client
])
def test_ipv6_loopback_is_no_ipv4_client(tmp_path: Path, net: str, counted: bool) -> None:
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: ['{net}', "
                        "10.0.0.0/8]\n")
    assert bool(relay_errors(found)) is counted, [d.format() for d in found]


@pytest.mark.parametrize(("net", "named"), [
    ("[2001::1]/128", "Teredo (RFC 4380) 2001::/32"),
    ("[2001::]/32", "Teredo (RFC 4380) 2001::/32"),
    ("[64:ff9b:1::c633:6402]/128", "NAT64 local-use prefix (RFC 8215) 64:ff9b:1::/48"),
    ("[64:ff9b::]/32", "NAT64 local-use prefix (RFC 8215) 64:ff9b:1::/48"),
])
def test_unbounded_ipv4_prefixes_are_refused_by_name(tmp_path: Path, net: str,
                                                     named: str) -> None:
    found = relay_errors(diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: "
                                     f"['{net}']\n"))
    assert [d.path for d in found] == [".postfix.mynetworks[0]"], [d.format() for d in found]
    assert f"mynetworks {net} would trust all of IPv4: " in found[0].message
    assert f"overlaps the {named}: any IPv4 host can appear there" in found[0].message
    assert found[0].hint == "list the IPv4 networks themselves, e.g. 192.0.2.0/24"


# --- addresses Postfix binds: parsed, not just shaped -------------------------------------

ADDRESS_HINT = "write an IPv4 address like 192.0.2.1 or an IPv6 address like 2001:db8::1"


@pytest.mark.parametrize("bad", ["999.1.1.1", "::::", "1:2:3:4:5:6:7:8:9"])
def test_inet_interfaces_must_be_addresses(tmp_path: Path, bad: str) -> None:
    """Postfix stops at start (exit 75) on an address it cannot bind; judged after a
    valid entry too."""
    found = diagnostics(tmp_path, ROAMING + f"postfix:\n  inet_interfaces: [all, '{bad}']\n")
    hits = [d for d in found if d.code == "bad-address"]
    assert [(d.path, d.level) for d in hits] == [(".postfix.inet_interfaces[1]", Level.ERROR)]
    assert hits[0].message.startswith(f"{bad!r} is not `all`, `loopback-only` or an IP "
                                      "address: ")
    assert hits[0].message != f"{bad!r} is not `all`, `loopback-only` or an IP address: "
    assert hits[0].hint == ADDRESS_HINT


@pytest.mark.parametrize("good", ["all", "loopback-only", "192.0.2.1", "2001:db8::1", "::1"])
def test_inet_interfaces_words_and_addresses_validate(tmp_path: Path, good: str) -> None:
    found = diagnostics(tmp_path, ROAMING + f"postfix:\n  inet_interfaces: ['{good}']\n")
    assert [d.format() for d in found if d.code == "bad-address"] == []


@pytest.mark.parametrize(("address", "bad"), [
    ("999.0.0.1", True), (":", True), ("1:2:3:4:5:6:7:8:9", True), ("192.0.2.1", False),
    ("2001:db8::1", False),
])
def test_listener_address_must_be_an_address(tmp_path: Path, address: str, bad: bool) -> None:
    found = diagnostics(tmp_path, ROAMING + "listeners:\n"
                        "  - {name: smtp, port: 25, tls: starttls, auth: false}\n"
                        "  - {name: submission, port: 587, tls: starttls-required, auth: true,"
                        f" address: '{address}'}}\n")
    hits = [d for d in found if d.code == "bad-address"]
    assert [d.path for d in hits] == ([".listeners[1].address"] if bad else []), \
        [d.format() for d in found]
    if bad:
        assert hits[0].level is Level.ERROR and hits[0].hint == ADDRESS_HINT
        assert hits[0].message.startswith(f"{address!r} is not an IP address: ")
        assert hits[0].message != f"{address!r} is not an IP address: "


@pytest.mark.parametrize(("net", "warned"), [
    ("[::ffff:808:0]/112", True),  # IPv4-mapped 8.8.0.0/16
    ("[64:ff9b::808:0]/112", True),  # NAT64 8.8.0.0/16
    ("[2002:808::]/32", True),  # 6to4 8.8.0.0/16
    ("[::ffff:808:800]/120", False),  # IPv4-mapped 8.8.8.0/24
])
def test_wide_public_ipv4_behind_ipv6_warns(tmp_path: Path, net: str, warned: bool) -> None:
    """The IPv6 entry itself is narrow or not global; the public IPv4 it stands for is
    wide: warned as if written in IPv4."""
    found = diagnostics(tmp_path, SATELLITE + f"postfix:\n  mynetworks: ['{net}']\n")
    assert (("wide-mynetworks", ".postfix.mynetworks[0]") in warnings(found)) is warned


# --- characters that end, split or disguise a line -----------------------------------------
# Each with its Unicode name, or its category where Unicode names none (UnicodeData.txt).
HIDDEN_CHARACTERS = [
    ("\x00", "U+0000 Cc"), ("\t", "U+0009 Cc"), ("\n", "U+000A Cc"), ("\x85", "U+0085 Cc"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"), ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"), ("\ue000", "U+E000 Co"),
    ("\ud800", "U+D800 Cs"), ("\u0378", "U+0378 Cn"), ("\u2028", "U+2028 LINE SEPARATOR"),
    ("\u2029", "U+2029 PARAGRAPH SEPARATOR"), ("\u00a0", "U+00A0 NO-BREAK SPACE"),
    ("\u3000", "U+3000 IDEOGRAPHIC SPACE"), ("\u1680", "U+1680 OGHAM SPACE MARK"),
]


def _description_findings(text: str) -> list[Any]:
    from relaykit.profile import policy

    doc = _roaming_doc(["permit_mynetworks", "permit_sasl_authenticated",
                        "reject_unauth_destination"])
    doc["description"] = text
    return [f for f in policy.run(doc) if f.code == "control-character"]


@pytest.mark.parametrize(("char", "named"), HIDDEN_CHARACTERS)
def test_hidden_characters_are_refused_by_name(char: str, named: str) -> None:
    found = _description_findings(f"relay{char}x")
    assert [(f.path, f.level) for f in found] == [(("description",), Level.ERROR)]
    assert f"({named}) in {'relay' + char + 'x'!r}: it would end, split or disguise the " \
           "line in the rendered files" in found[0].message
    assert found[0].message.startswith("control, invisible or non-space white-space "
                                       "character (")
    assert "plain spaces only" in found[0].hint


@pytest.mark.parametrize("text", ["relais é ü", "中继", "relay → smarthost", "a b", "~!"])
def test_visible_characters_and_plain_spaces_validate(text: str) -> None:
    assert _description_findings(text) == []


@pytest.mark.parametrize(("length", "shown"), [
    (60, None),  # 60 characters: shown whole
    (61, 57),  # longer: the first 57 and "..."
])
def test_long_values_are_shown_cut(length: int, shown: int | None) -> None:
    text = "x" * (length - 1) + "\u200b"
    found = _description_findings(text)
    expected = repr(text) if shown is None else repr(text[:shown] + "...")
    assert f") in {expected}: " in found[0].message


def test_the_first_hidden_character_of_a_value_is_named() -> None:
    found = _description_findings("a\u00e9b\u200bc\u202ed")
    assert "(U+200B ZERO WIDTH SPACE)" in found[0].message


def test_validation_judges_the_declared_deployment(tmp_path: Path) -> None:
    """A published Helm relay trusting the cluster's networks relays for every pod:
    `validate` refuses it, not only `build --format helm` (deployment checks are
    registered with the policy's own)."""
    found = diagnostics(tmp_path, ROAMING + "postfix:\n  mynetworks: [10.0.0.0/8]\n"
                        "outputs: {helm: {service_type: LoadBalancer}}\n")
    assert ("cluster-relay", ".postfix.mynetworks[0]") in errors(found)


def test_every_bad_mynetworks_entry_is_reported_not_only_the_first(tmp_path: Path) -> None:
    """Validation collects every error: an unbounded IPv6 entry (Teredo) does not hide
    the malformed and the open ones after it."""
    found = diagnostics(tmp_path, ROAMING + "postfix:\n  mynetworks: ['[2001::]/32', "
                        "'[64:ff9b:1::]/48', 10.0.0.1/8, 0.0.0.0/0]\n")
    errors = {(d.path, d.code) for d in found if d.level is Level.ERROR}
    assert {(".postfix.mynetworks[0]", "open-relay"), (".postfix.mynetworks[1]", "open-relay"),
            (".postfix.mynetworks[2]", "bad-network")} <= errors
    assert any(path == ".postfix.mynetworks[3]" for path, _ in errors), errors
