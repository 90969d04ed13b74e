"""Abuse limits and sender binding: what each `abuse` setting renders, and the login
table as Postfix itself reads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit.profile.load import load_profile
from relaykit.render import abuse
from relaykit.render.postfix import listener_entry, main_settings

LIMITS = {"smtpd_client_auth_rate_limit", "smtpd_client_connection_rate_limit",
          "smtpd_client_connection_count_limit", "smtpd_client_message_rate_limit",
          "smtpd_client_recipient_rate_limit", "smtpd_hard_error_limit"}


def profile(tmp_path: Path, abuse_yaml: str = "", base: str = "roaming"):  # type: ignore[no-untyped-def]
    doc = tmp_path / "p.yaml"
    doc.write_text(f"extends: {base}\nname: t\n" + (f"abuse:\n{abuse_yaml}" if abuse_yaml else ""))
    return load_profile(str(doc)).profile


def main(p) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(main_settings(p))


def opts(p, i: int = 0) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(listener_entry(p, p.listeners[i]).options)


def test_defaults_limit_every_auth_listener(tmp_path: Path) -> None:
    p = profile(tmp_path)
    for i in range(len(p.listeners)):
        o = opts(p, i)
        assert {k: o[k] for k in LIMITS} == {
            "smtpd_client_auth_rate_limit": "10", "smtpd_client_connection_rate_limit": "30",
            "smtpd_client_connection_count_limit": "10", "smtpd_client_message_rate_limit": "60",
            "smtpd_client_recipient_rate_limit": "200", "smtpd_hard_error_limit": "5"}
        assert o["smtpd_sender_restrictions"] == abuse.SENDER_CLASS
    assert main(p)["anvil_rate_time_unit"] == "60s"


def test_values_come_from_the_profile(tmp_path: Path) -> None:
    p = profile(tmp_path, "  auth_rate: 3\n  rate_time_unit: 300\n  error_limit: 2\n"
                          "  connection_count: 0\n")
    o = opts(p)
    assert o["smtpd_client_auth_rate_limit"] == "3"
    assert o["smtpd_hard_error_limit"] == "2"
    assert o["smtpd_client_connection_count_limit"] == "0"
    assert main(p)["anvil_rate_time_unit"] == "300s"


def test_nothing_on_a_listener_without_auth_nor_a_profile_without_sasl(tmp_path: Path) -> None:
    sat = load_profile("satellite").profile
    assert abuse.main_settings(sat) == []
    assert not LIMITS & set(opts(sat))
    mixed = tmp_path / "m.yaml"
    mixed.write_text("extends: roaming\nname: t\nlisteners:\n"
                     "  - {name: submission, port: 587, tls: starttls-required, auth: true}\n"
                     "  - {name: smtp, port: 25, tls: starttls, auth: false}\n")
    p = load_profile(str(mixed)).profile
    assert set(opts(p, 0)) >= LIMITS
    assert not LIMITS & set(opts(p, 1)) and "smtpd_sender_restrictions" not in opts(p, 1)


@pytest.mark.parametrize("binding,null,want,absent", [
    ("reject", "reject", ["reject_authenticated_sender_login_mismatch",
                          "check_sender_access inline:{{<> = REJECT"], ["warn_if_reject"]),
    ("warn", "reject", ["warn_if_reject reject_authenticated_sender_login_mismatch",
                        "check_sender_access"], []),
    ("any", "reject", ["check_sender_access"], ["login_mismatch"]),
    ("reject", "allow", ["reject_authenticated_sender_login_mismatch"], ["check_sender_access"]),
])
def test_sender_rules(tmp_path: Path, binding: str, null: str, want: list[str],
                      absent: list[str]) -> None:
    p = profile(tmp_path, f"  sender_binding: {binding}\n  null_sender: {null}\n")
    rules = main(p)[abuse.SENDER_CLASS]
    assert all(w in rules for w in want), rules
    assert not any(a in rules for a in absent), rules
    assert rules.endswith("reject_non_fqdn_sender")  # the profile's own rules still apply
    assert main(p)["smtpd_restriction_classes"] == abuse.SENDER_CLASS
    assert ("smtpd_sender_login_maps" in main(p)) == (binding != "any")


def test_binding_off_and_null_allowed_leave_only_the_profiles_rules(tmp_path: Path) -> None:
    p = profile(tmp_path, "  sender_binding: any\n  null_sender: allow\n")
    assert main(p)[abuse.SENDER_CLASS] == "reject_non_fqdn_sender"


def test_authenticated_header_only_when_asked(tmp_path: Path) -> None:
    assert "smtpd_sasl_authenticated_header" not in opts(profile(tmp_path))
    p = profile(tmp_path, "  authenticated_header: true\n")
    assert opts(p)["smtpd_sasl_authenticated_header"] == "yes"


@pytest.mark.parametrize("bad", ["  auth_rate: -1\n", "  auth_rate: 1001\n",
                                 "  rate_time_unit: 5\n", "  sender_binding: maybe\n",
                                 "  null_sender: sometimes\n", "  error_limit: 0\n",
                                 "  unknown_limit: 3\n", "  auth_rate: '10'\n"])
def test_schema_bounds_every_value(tmp_path: Path, bad: str) -> None:
    from relaykit.errors import RelaykitError

    with pytest.raises(RelaykitError):
        profile(tmp_path, bad)


@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
@pytest.mark.parametrize("address,owners", [
    ("alice@example.org", "alice@example.org, alice"),
    ("Alice@Example.ORG", "Alice@example.org, Alice"),
    ("bob@other.example", "bob@other.example"),
    ("alice@example.org.evil.example", "alice@example.org.evil.example"),
    ("alice@sub.example.org", "alice@sub.example.org"),
])
def test_login_table_as_postfix_reads_it(tmp_path: Path, address: str, owners: str) -> None:
    """main.cf expands $$ to $: the table must survive that, with anchors intact."""
    (tmp_path / "main.cf").write_text(
        f"smtpd_sender_login_maps = {abuse.login_map('example.org')}\n")
    table = subprocess.run(["postconf", "-c", str(tmp_path), "-xh", "smtpd_sender_login_maps"],
                           capture_output=True, text=True, check=True).stdout.strip()
    got = subprocess.run(["postmap", "-c", str(tmp_path), "-q", address, table],
                         capture_output=True, text=True).stdout.strip()
    assert got == owners


def test_hide_client_ip_only_when_asked(tmp_path: Path) -> None:
    assert "header_checks" not in main(profile(tmp_path))
    assert main(profile(tmp_path, "  hide_client_ip: true\n"))["header_checks"] == (
        abuse.HIDE_CLIENT_CHECKS)


@pytest.mark.skipif(shutil.which("postmap") is None, reason="needs Postfix's postmap")
def test_hide_client_ip_drops_only_authenticated_received_headers(tmp_path: Path) -> None:
    mail = ("Received: from laptop.test (unknown [198.51.100.2])\n\t(using TLSv1.3)\n"
            "\tby relay.example.org (Postfix) with ESMTPSA id ABC\n\tfor <a@b.example>; now\n"
            "Received: from mx.test (mx.test [192.0.2.7]) by relay with ESMTPS id Q; now\n"
            "Subject: hi\n\nbody mentions with ESMTPSA too\n")
    (tmp_path / "main.cf").write_text("")
    out = subprocess.run(["postmap", "-c", str(tmp_path), "-h", "-q", "-",
                          abuse.HIDE_CLIENT_CHECKS], input=mail,
                         capture_output=True, text=True).stdout
    assert "198.51.100.2" in out and out.rstrip().endswith("IGNORE")  # the matched header
    assert "192.0.2.7" not in out and "Subject" not in out
