"""The `postfix.main_cf` escape hatch, tried as an attacker would: every parameter
relaykit writes is refused (the rendered config is the oracle, not relaykit's own
table), parameters that hand out trust are refused with their reason, and the allowlist
takes exactly its documented values, bounds included.

Written to kill the mutants of profile/parameters.py and policy.main_cf_allowlist that
survived the other unit tests (`invoke mutation`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relaykit.errors import Diagnostic, Level
from relaykit.paths import schema_file
from relaykit.profile import parameters
from relaykit.profile.load import load_profile
from relaykit.render.postfix import render

from ..diagnostics import profile_diagnostics as diagnostics

ROAMING = "extends: roaming\nname: t\n"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"




def main_cf(tmp_path: Path, key: str, value: object) -> list[Diagnostic]:
    return diagnostics(tmp_path, ROAMING + "postfix:\n  main_cf:\n"
                       f"    {key}: {json.dumps(value)}\n")


def written_parameters() -> list[str]:
    """Every main.cf parameter and master.cf -o option relaykit renders for the shipped
    profiles, read from their golden files (cheap at collection, and independent of the
    code under test)."""
    keys: set[str] = set()
    for main in GOLDEN.glob("*/files/etc/postfix/main.cf"):
        keys.update(line.split(" = ", 1)[0] for line in main.read_text().splitlines()
                    if " = " in line and not line.startswith("#"))
    for master in GOLDEN.glob("*/postconf/master.cf.edits"):
        keys.update(line.split(" = ", 1)[0].rsplit("/", 1)[1]
                    for line in master.read_text().splitlines() if " = " in line)
    assert len(keys) > 40, f"golden files missing under {GOLDEN}"
    return sorted(keys)


def schema_has(field: str) -> bool:
    """`postfix.myhostname`, `listeners[].tls` -> is it a property in the schema?"""
    node = json.loads(schema_file().read_text())
    for part in field.replace("[]", "").split("."):
        if node.get("type") == "array" or "items" in node:
            node = node["items"]
        props = node.get("properties", {})
        if part not in props:
            return False
        node = props[part]
    return True


@pytest.mark.parametrize("key", written_parameters())
def test_every_parameter_relaykit_writes_is_refused(tmp_path: Path, key: str) -> None:
    found = main_cf(tmp_path, key, "x")
    at = f".postfix.main_cf.{key}"
    # A name outside the schema's pattern is refused at the mapping (propertyNames).
    where = (at,) if NAME.match(key) else (at, ".postfix.main_cf")
    hits = [d for d in found if d.level is Level.ERROR and d.path in where]
    assert hits, f"main_cf may override {key}, which relaykit writes: " + \
        str([d.format() for d in found])
    if not NAME.match(key):
        return  # the schema refuses the name itself (smtp_tls_CAfile)
    managed = [d for d in hits if d.code == "managed-parameter"]
    assert managed, [d.format() for d in hits]
    if managed[0].hint.startswith("remove it: relaykit always sets it"):
        assert parameters.MANAGED[key].startswith(parameters.FIXED)
        return
    field = managed[0].hint.removeprefix("set ").removesuffix(" instead")
    alternatives = [alt.split()[0] for alt in field.split(" or ")]
    assert alternatives and all(schema_has(f) for f in alternatives), \
        f"{key}: the hint names {field!r}, not a profile field"


# Parameters that hand out trust, weaken TLS or change routing: each refused with the
# reason, not the generic "cannot tell".
TRUST = [
    "relay_domains", "permit_mx_backup_networks",
    "mynetworks_style", "smtpd_authorized_xclient_hosts", "smtpd_authorized_xforward_hosts",
    "smtpd_upstream_proxy_protocol", "postscreen_upstream_proxy_protocol",
    "relay_clientcerts", "smtpd_tls_fingerprint_digest", "smtp_tls_policy_maps",
    "smtpd_sasl_type", "smtp_sasl_mechanism_filter", "smtpd_sasl_exceptions_networks",
    "soft_bounce", "smtpd_null_access_lookup_key", "smtpd_reject_unlisted_recipient",
    "transport_maps", "default_transport",
]
# Unknown to relaykit: refused by default.
UNKNOWN = ["smtpd_client_event_limit_exceptions", "proxy_interfaces",
           "smtpd_discard_ehlo_keywords", "local_recipient_maps", "not_a_parameter"]


@pytest.mark.parametrize("key", TRUST)
def test_parameters_that_hand_out_trust_are_refused_with_their_reason(tmp_path: Path,
                                                                       key: str) -> None:
    hits = [d for d in main_cf(tmp_path, key, "0.0.0.0/0")
            if d.code == "parameter-not-allowed" and d.level is Level.ERROR]
    assert hits and hits[0].path == f".postfix.main_cf.{key}"
    assert "relaykit cannot tell" not in hits[0].message, hits[0].message
    assert "smtpd_banner" in hits[0].hint  # it lists what main_cf does accept


@pytest.mark.parametrize("key", UNKNOWN)
def test_unknown_parameters_are_refused(tmp_path: Path, key: str) -> None:
    hits = [d for d in main_cf(tmp_path, key, "yes")
            if d.code == "parameter-not-allowed" and d.level is Level.ERROR]
    assert hits and "relaykit cannot tell" in hits[0].message


@pytest.mark.parametrize(("key", "removed"), [
    ("smtpd_sasl_application_name", True), ("virtual_maps", True),
    ("smtpd_use_tls", False), ("smtpd_enforce_tls", False), ("smtp_use_tls", False),
    ("smtp_enforce_tls", False), ("disable_dns_lookups", False),
    ("smtpd_tls_dh512_param_file", False),
])
def test_obsolete_parameters_name_their_replacement(tmp_path: Path, key: str,
                                                    removed: bool) -> None:
    hits = [d for d in main_cf(tmp_path, key, "yes") if d.code == "obsolete-parameter"]
    assert hits and hits[0].hint.startswith("use ") and len(hits[0].hint) > 6
    assert ("obsolete" in hits[0].message) is removed
    assert ("deprecated" in hits[0].message) is not removed


# The allowlist: (parameter, smallest accepted, largest accepted, refused values).
INTEGERS = [
    ("smtpd_recipient_limit", 1, 100_000), ("smtpd_recipient_overshoot_limit", 1, 100_000),
    ("smtpd_soft_error_limit", 1, 1000),
    ("smtpd_junk_command_limit", 1, 1000),
    ("smtpd_client_new_tls_session_rate_limit", 0, 1_000_000),
    ("header_size_limit", 1024, 10_485_760), ("line_length_limit", 1024, 1_048_576),
    ("default_process_limit", 1, 1000), ("default_destination_concurrency_limit", 1, 1000),
    ("smtp_destination_concurrency_limit", 1, 1000),
]
DAY = 86400
DURATIONS = [  # bounds in seconds
    ("smtpd_timeout", 1, 3600), ("smtpd_error_sleep_time", 0, 300),
    ("maximal_queue_lifetime", 0, 100 * DAY),
    ("bounce_queue_lifetime", 0, 100 * DAY), ("delay_warning_time", 0, 100 * DAY),
    ("minimal_backoff_time", 1, DAY), ("maximal_backoff_time", 1, DAY),
    ("queue_run_delay", 1, DAY), ("smtp_connect_timeout", 1, 300),
    ("smtp_helo_timeout", 1, 3600), ("in_flow_delay", 0, 10),
]
YES_NO = ["smtpd_peername_lookup", "smtpd_tls_ask_ccert", "smtputf8_enable"]


def accepted(key: str, value: object) -> bool:
    """The allowlist's verdict on one value (the profile round trip is shown once below:
    a few hundred profile loads would slow every mutant down)."""
    try:
        parameters.ALLOWED[key].parse(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("key", "good", "bad"), [
    ("smtpd_recipient_limit", 100_000, 100_001), ("smtpd_timeout", "3600s", "3601s"),
    ("smtpd_tls_ask_ccert", True, "maybe"), ("smtpd_banner", "$myhostname ESMTP", "x"),
])
def test_allowlist_verdicts_reach_validation(tmp_path: Path, key: str, good: object,
                                             bad: object) -> None:
    at = f".postfix.main_cf.{key}"
    assert not [d for d in main_cf(tmp_path, key, good) if d.path == at]
    refused = [d for d in main_cf(tmp_path, key, bad) if d.path == at]
    assert [d.code for d in refused] == ["parameter-value"]


@pytest.mark.parametrize(("key", "lo", "hi"), INTEGERS, ids=[i[0] for i in INTEGERS])
def test_allowed_integer_bounds(key: str, lo: int, hi: int) -> None:
    assert accepted(key, lo)
    assert accepted(key, hi)
    assert accepted(key, str(hi))
    for bad in (hi + 1, "1e3", "-1", True):
        assert not accepted(key, bad), bad
    if lo > 0:
        assert not accepted(key, lo - 1)


@pytest.mark.parametrize(("key", "lo", "hi"), DURATIONS, ids=[d[0] for d in DURATIONS])
def test_allowed_duration_bounds(key: str, lo: int, hi: int) -> None:
    assert accepted(key, f"{lo}s")
    assert accepted(key, f"{hi}s")
    assert not accepted(key, f"{hi + 1}s")
    if hi % 60 == 0:
        assert accepted(key, f"{hi // 60}m")
    for bad in (str(hi), "5x", "s", True):
        assert not accepted(key, bad), bad
    if lo > 0:
        assert not accepted(key, f"{lo - 1}s")


@pytest.mark.parametrize("key", YES_NO)
def test_allowed_yes_no(key: str) -> None:
    for good in ("yes", "no", True, False):
        assert accepted(key, good), good
    for bad in ("maybe", 1, "YES"):
        assert not accepted(key, bad), bad


@pytest.mark.parametrize(("key", "good", "bad"), [
    ("smtpd_banner", ["$myhostname", "$myhostname ESMTP relay"],
     ["relay ESMTP", "$myhostname $mail_version", "$myhostname\u00e9", 1]),
    ("smtp_helo_name", ["$myhostname", "mail.example.org"],
     ["mail example.org", "-bad.example", "$mydomain"]),
    ("notify_classes", ["bounce", "bounce, delay", "resource,software"],
     ["bounce, bounce", "bogus", "bounce, bogus", ""]),
])
def test_allowed_text_grammars(key: str, good: list[object], bad: list[object]) -> None:
    for value in good:
        assert accepted(key, value), value
    for value in bad:
        assert not accepted(key, value), value


def test_allowed_values_reach_main_cf_last_and_once(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ROAMING + "postfix:\n  main_cf:\n    smtpd_timeout: 30s\n"
                    "    smtpd_tls_ask_ccert: true\n")
    text = render(load_profile(str(path)).profile).tree.text("/etc/postfix/main.cf")
    lines = text.splitlines()
    assert lines.count("smtpd_timeout = 30s") == 1
    assert lines.count("smtpd_tls_ask_ccert = yes") == 1


def test_allowed_values_are_rendered_in_canonical_form(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ROAMING + """\
postfix:
  main_cf:
    smtpd_recipient_limit: '0100'
    smtpd_error_sleep_time: 030s
    smtpd_peername_lookup: false
    smtputf8_enable: 'no'
    notify_classes: bounce,delay
    smtp_helo_name: mail.example.org
    smtpd_banner: $myhostname ESMTP
""")
    main = render(load_profile(str(path)).profile).tree.text("/etc/postfix/main.cf")
    lines = main.splitlines()
    for line in ("smtpd_recipient_limit = 100", "smtpd_error_sleep_time = 30s",
                 "smtpd_peername_lookup = no", "smtputf8_enable = no",
                 "notify_classes = bounce, delay", "smtp_helo_name = mail.example.org",
                 "smtpd_banner = $myhostname ESMTP"):
        assert line in lines, main


@pytest.mark.parametrize(("key", "bad", "hint"), [
    ("smtpd_recipient_limit", 0, "write an integer from 1 to 100000"),
    ("smtpd_timeout", "0s", "write a time with its unit (s, m, h, d, w) from 1s to 3600s"),
    ("smtpd_peername_lookup", "maybe", "write yes or no"),
    ("notify_classes", "bogus", "write a comma-separated set of bounce, 2bounce, delay"),
    ("smtp_helo_name", "a b", "write a host name (or $myhostname)"),
    ("smtpd_banner", "hello", "write $myhostname, then printable text without $"),
])
def test_refused_values_say_what_is_expected(tmp_path: Path, key: str, bad: object,
                                             hint: str) -> None:
    hits = [d for d in main_cf(tmp_path, key, bad) if d.code == "parameter-value"]
    assert hits and hits[0].hint.startswith(hint), [d.format() for d in hits]


def test_single_choice_grammar_describes_itself() -> None:
    one = parameters.Choices(("a", "b"))
    assert one.describe() == "one of a, b"
    assert one.parse("a") == "a"
    with pytest.raises(ValueError):
        one.parse("a, b")


@pytest.mark.parametrize("key", ["smtp_helo_name", "smtpd_banner", "notify_classes",
                                 "smtpd_recipient_limit", "smtpd_timeout"])
def test_a_yes_no_is_not_a_value_for_text_or_numbers(key: str) -> None:
    for value in (True, False):
        with pytest.raises(ValueError):
            parameters.ALLOWED[key].parse(value)


# Each unit of a Postfix time value, in seconds (postconf(5), "Time units").
UNIT_SECONDS = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]


@pytest.mark.parametrize(("unit", "seconds"), UNIT_SECONDS)
def test_every_time_unit_counts_its_seconds_against_the_bounds(unit: str,
                                                               seconds: int) -> None:
    """A bound is checked in seconds, whatever the unit: "1h" is exactly 3600 s."""
    assert parameters.Duration(seconds, seconds).parse(f"1{unit}") == f"1{unit}"
    with pytest.raises(ValueError, match="is not a time"):
        parameters.Duration(0, seconds - 1).parse(f"1{unit}")
    with pytest.raises(ValueError, match="is not a time"):
        parameters.Duration(seconds + 1, 10 * seconds).parse(f"1{unit}")
