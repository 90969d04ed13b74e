"""Profiles: shipped ones validate; broken ones fail with FILE:LINE: .path: message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from relaykit.errors import Level, ProfileError, RelaykitError
from relaykit.profile.load import load_profile

SHIPPED = ["roaming", "satellite", "gazette-2007"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_validate(name: str) -> None:
    loaded = load_profile(name)
    assert loaded.profile.name == name
    assert loaded.profile.formats == ("oci", "deb")


def test_roaming_is_the_documented_relay() -> None:
    p = load_profile("roaming").profile
    assert {(lis.port, lis.tls, lis.auth) for lis in p.listeners} == {
        (587, "starttls-required", True), (465, "implicit", True)}
    assert p.sasl is not None
    assert p.sasl.backend == "saslauthd" and set(p.sasl.mechanisms) == {"PLAIN", "LOGIN"}
    assert "noanonymous" in p.sasl.security_options
    assert load_profile("roaming").warnings == ()


def test_gazette_builds_with_warnings_only() -> None:
    loaded = load_profile("gazette-2007")
    assert {w.code for w in loaded.warnings} == {"weak-mechanism"}
    with pytest.raises(ProfileError):
        load_profile("gazette-2007", strict=True)


def test_unknown_profile_name_lists_shipped() -> None:
    with pytest.raises(RelaykitError) as info:
        load_profile("nonesuch")
    assert "roaming" in info.value.hint


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    return [d.format() for d in info.value.diagnostics if d.level is Level.ERROR]


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        extends: roaming
        name: branch
        postfix:
          myhostname: mail.branch.example
        listeners:
          - {name: submissions, port: 465, tls: implicit, auth: true}
        """)
    p = load_profile(str(path)).profile
    assert p.name == "branch"
    assert p.postfix.myhostname == "mail.branch.example"
    assert p.postfix.mydomain == "example.org"  # inherited from roaming
    assert [lis.port for lis in p.listeners] == [465]  # list replaced, not appended


def test_errors_point_into_the_file_that_wrote_the_value(tmp_path: Path) -> None:
    write(tmp_path, """\
        name: parent
        description: d
        version: "1"
        postfix: {myhostname: a.example, mydomain: example}
        listeners:
          - {name: smtp, port: 25, tls: starttls, auth: false}
        restrictions:
          relay: [permit]
        """, "parent.yaml")
    child = write(tmp_path, """\
        extends: parent.yaml
        name: child
        listeners:
          - name: smtp
            port: 99999
            tls: starttls
            auth: false
        """, "child.yaml")
    # Schema errors stop before policy: the port first...
    assert any("child.yaml:5: .listeners[0].port:" in e for e in errors_of(child))
    child.write_text(child.read_text().replace("99999", "25"))
    # ...then the relay decision, pinned in the parent that wrote it.
    assert any("parent.yaml:8: .restrictions.relay[0]: open relay" in e
               for e in errors_of(child))


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "extends: b.yaml\nname: a\n", "a.yaml")
    b = write(tmp_path, "extends: a.yaml\nname: b\n", "b.yaml")
    assert any("extends cycle" in e for e in errors_of(b))


def test_extends_replaces_a_list_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\npostfix:\n  mynetworks: ['[::1]/128']\n")
    child = load_profile(str(path)).profile
    roaming = load_profile("roaming").profile
    assert child.postfix.mynetworks == ("[::1]/128",)  # the list is replaced, not joined
    assert child.postfix.myhostname == roaming.postfix.myhostname  # the rest is merged
    assert child.listeners == roaming.listeners


def test_a_scalar_over_a_parent_mapping_is_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\npostfix: plain\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert [(d.code, d.path, d.line) for d in info.value.diagnostics] == [
        ("type", ".postfix", 3)]


BASE = """\
extends: roaming
name: t
"""

# (override YAML, expected rule code, expected path in the message)
BROKEN = [
    ("postfix:\n  mynetworkz: []\n", "unknown-field", ".postfix.mynetworkz"),
    ("listeners:\n  - {name: smtp, port: '25', tls: none, auth: false}\n", "type",
     ".listeners[0].port"),
    ("listeners:\n  - {name: smtp, port: 25, auth: false}\n", "required", ".listeners[0]"),
    ("listeners:\n  - {name: smtp, port: 25, tls: maybe, auth: false}\n", "enum",
     ".listeners[0].tls"),
    ("sasl:\n  security_options: [noplaintext]\n", "noanonymous", ".sasl.security_options"),
    ("sasl:\n  tls_security_options: []\n", "noanonymous", ".sasl.tls_security_options"),
    ("postfix:\n  mynetworks: [0.0.0.0/0]\n", "open-relay", ".postfix.mynetworks[0]"),
    ("postfix:\n  mynetworks: ['[::]/0']\n", "open-relay", ".postfix.mynetworks[0]"),
    ("postfix:\n  mynetworks: [8.0.0.0/6]\n", "open-relay", ".postfix.mynetworks[0]"),
    ("restrictions:\n  relay: [permit_mynetworks, permit]\n", "open-relay",
     ".restrictions.relay[1]"),
    ("restrictions:\n  relay: [permit_sasl_authenticated]\n", "open-relay",
     ".restrictions.relay"),
    ("listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: false,"
     " relay_restrictions: [permit_mynetworks, permit]}\n", "open-relay",
     ".listeners[0].relay_restrictions[1]"),
    ("restrictions:\n  relay: [check_client_access hash:/etc/postfix/ok,"
     " reject_unauth_destination]\n  maps:\n    ok: {entries: {0.0.0.0/0: OK}}\n",
     "open-relay", ".restrictions.relay[0]"),
    ("restrictions:\n  relay: [permit_naked_ip_address, reject_unauth_destination]\n",
     "open-relay", ".restrictions.relay[0]"),
    ("restrictions:\n  relay: [permit_mx_backup, reject_unauth_destination]\n",
     "open-relay", ".restrictions.relay[0]"),
    ("restrictions:\n  relay: [check_client_access static:OK, reject_unauth_destination]\n",
     "open-relay", ".restrictions.relay[0]"),
    ("restrictions:\n  relay: ['check_recipient_access inline:{x=RELAY}',"
     " reject_unauth_destination]\n", "map-type", ".restrictions.relay[0]"),
    ("postfix:\n  mynetworks: ['[::ffff:0.0.0.0]/96']\n", "open-relay",
     ".postfix.mynetworks[0]"),
    ("restrictions:\n  relay: [permit_mynetworks, reject_unauth_destination,"
     " permit_sasl_authenticated]\n", "sasl-order", ".restrictions.relay[1]"),
    ("sasl:\n  mechanisms: [PLAIN, CRAM-MD5]\n", "saslauthd-mech", ".sasl.mechanisms[1]"),
    ("sasl:\n  backend: saslauthd\n  mechanisms: [DIGEST-MD5]\n", "saslauthd-mech",
     ".sasl.mechanisms[0]"),
    ("listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: true}\n"
     "sasl:\n  security_options: [noanonymous]\n  auth_only_over_tls: false\n",
     "plaintext-auth", ".listeners[0].tls"),
    ("listeners:\n  - {name: smtp, port: 25, tls: none, auth: true}\n",
     "auth-never", ".listeners[0].tls"),
    ("postfix:\n  main_cf: {smtpd_sasl_application_name: smtpd}\n", "obsolete-parameter",
     ".postfix.main_cf.smtpd_sasl_application_name"),
    ("postfix:\n  main_cf: {mynetworks: 0.0.0.0/0}\n", "managed-parameter",
     ".postfix.main_cf.mynetworks"),
    ("outbound:\n  relayhost: '[smtp.example.net]:587'\n  sasl: true\n  tls_level: encrypt\n"
     "  credentials_key: smtp.example.net:587\n", "credentials-key",
     ".outbound.credentials_key"),
    ("outbound:\n  relayhost: '[smtp.example.net]:587'\n  sasl: true\n  tls_level: may\n",
     "outbound-tls",
     ".outbound.tls_level"),
    ("outbound:\n  sasl: true\n  tls_level: encrypt\n", "relayhost-missing", ".outbound.sasl"),
    ("restrictions:\n  recipient: [check_helo_access hash:/etc/postfix/helo]\n",
     "map-missing", ".restrictions.recipient[0]"),
    ("listeners:\n  - {name: a, port: 587, tls: implicit, auth: true}\n"
     "  - {name: a, port: 465, tls: implicit, auth: true}\n", "listener-duplicate",
     ".listeners[1].name"),
    ("tls:\n  cert_file: /run/secrets/relay.pem\n", "tls-pair", ".tls.key_file"),
]


@pytest.mark.parametrize("override,code,path", BROKEN, ids=[b[1] + ":" + b[2] for b in BROKEN])
def test_broken_profile_is_refused_with_location(tmp_path: Path, override: str, code: str,
                                                 path: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(BASE + override)
    with pytest.raises(ProfileError) as info:
        load_profile(str(profile))
    hits = [d for d in info.value.diagnostics if d.code == code and d.level is Level.ERROR]
    assert hits, [d.format() for d in info.value.diagnostics]
    assert any(d.path == path for d in hits), [d.format() for d in hits]
    for d in hits:
        assert d.file.endswith("p.yaml") and d.line > 2 and d.message


@pytest.mark.parametrize("override,code", [
    ("sasl:\n  backend: auxprop\n  mechanisms: [CRAM-MD5, PLAIN]\n", "weak-mechanism"),
    ("restrictions:\n  relay: [permit_sasl_authenticated, defer_unauth_destination]\n",
     "relay-defer"),
    ("restrictions:\n  recipient: [check_policy_service inet:127.0.0.1:60000]\n",
     "policy-service"),
    ("listeners:\n  - {name: smtp, port: 25, tls: starttls, auth: true}\n"
     "sasl:\n  security_options: [noanonymous]\n  auth_only_over_tls: false\n"
     "  allow_insecure_legacy: true\n", "plaintext-auth"),
])
def test_warnings_do_not_fail_unless_strict(tmp_path: Path, override: str, code: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(BASE + override)
    loaded = load_profile(str(profile))
    assert code in {w.code for w in loaded.warnings}
    with pytest.raises(ProfileError):
        load_profile(str(profile), strict=True)


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    profile = write(tmp_path, BASE + "postfix:\n  bogus: 1\n  mynetworks: 3\nsasl:\n  x: 1\n")
    assert len(errors_of(profile)) == 3


# Found by review: each once let an open relay or a broken config through validation.
REVIEWED = [
    ("postfix:\n  main_cf:\n    smtpd_banner: \"x\\nsmtpd_relay_restrictions = permit\"\n",
     "control-character", ".postfix.main_cf.smtpd_banner"),
    ("postfix:\n  mynetworks: [\"127.0.0.0/8\\n\", 0.0.0.0/0]\n", "control-character",
     ".postfix.mynetworks[0]"),
    ("postfix:\n  mynetworks: [10.0.0.0/33]\n", "bad-network", ".postfix.mynetworks[0]"),
    ("listeners:\n  - {name: smtp, port: 25, tls: none, auth: false,"
     " address: \"2525 inet n - n - - smtpd\"}\n", "pattern", ".listeners[0].address"),
    ("postfix:\n  main_cf: {relay_domains: 'static:ALL'}\n", "parameter-not-allowed",
     ".postfix.main_cf.relay_domains"),
    ("postfix:\n  main_cf: {smtpd_restriction_classes: openrelay, openrelay: permit}\n"
     "restrictions:\n  relay: [permit_sasl_authenticated, openrelay, reject_unauth_destination]\n",
     "unknown-restriction", ".restrictions.relay[1]"),
    ("restrictions:\n  relay: [check_recipient_access hash:/etc/postfix/x,"
     " reject_unauth_destination]\n  maps:\n    x: {entries: {gmail.com: '1'}}\n",
     "open-relay", ".restrictions.relay[0]"),
    ("restrictions:\n  maps:\n    x: {entries: {'gmail.com permit': REJECT}}\n",
     "pattern", ".restrictions.maps.x.entries"),
    ("restrictions:\n  relay: ['check_client_access unionmap:{static:OK}',"
     " reject_unauth_destination]\n", "map-type", ".restrictions.relay[0]"),
    ("version: 2026-11-27\n", "type", ".version"),
    ("listeners:\n  - {name: smtp, port: 2525.0, tls: none, auth: false}\n", "type",
     ".listeners[0].port"),
    ("restrictions:\n  relay: [permit_sasl_authenticated, warn_if_reject,"
     " reject_unauth_destination]\n", "open-relay", ".restrictions.relay"),
    ("restrictions:\n  sender: [reject_unknown_sendre_domain]\n", "unknown-restriction",
     ".restrictions.sender[0]"),
    ("restrictions:\n  recipient: [check_helo_access cidr:/etc/postfix/x]\n"
     "  maps:\n    x: {entries: {a.example: REJECT}}\n", "map-type",
     ".restrictions.recipient[0]"),
]


@pytest.mark.parametrize("override,code,path", REVIEWED, ids=[r[1] + ":" + r[2] for r in REVIEWED])
def test_reviewed_holes_are_closed(tmp_path: Path, override: str, code: str, path: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(BASE + override)
    with pytest.raises(ProfileError) as info:
        load_profile(str(profile))
    hits = [d for d in info.value.diagnostics if d.code == code and d.level is Level.ERROR]
    assert any(d.path == path for d in hits), [d.format() for d in info.value.diagnostics]


@pytest.mark.parametrize("override", [
    # A permit ends only its own list: the recipient list still refuses foreign mail.
    "restrictions:\n  relay: [permit]\n  recipient: [permit_mynetworks,"
    " permit_sasl_authenticated, reject_unauth_destination]\n",
    # A port without AUTH needs no permit_sasl_authenticated.
    "listeners:\n  - {name: submissions, port: 465, tls: implicit, auth: true}\n"
    "  - {name: lan, port: 2525, tls: starttls, auth: false,"
    " relay_restrictions: [permit_mynetworks, reject_unauth_destination]}\n",
    # Current parameters are not "obsolete".
    "postfix:\n  main_cf: {smtpd_tls_ask_ccert: false, smtpd_timeout: 30s}\n",
    "restrictions:\n  recipient: [check_recipient_access texthash:/etc/postfix/x]\n"
    "  maps:\n    x: {type: texthash, entries: {a.example: REJECT}}\n",
])
def test_reasonable_profiles_are_accepted(tmp_path: Path, override: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(BASE + override)
    assert load_profile(str(profile)).profile.name == "t"


def test_strict_says_warnings_were_counted(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("gazette-2007", strict=True)
    assert "2 warning(s) treated as errors" in info.value.render()
