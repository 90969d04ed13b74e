"""format_table, the JSON spec round trip, and the whole suite against the sink."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from relaykit.verify.harness.testbed import self_signed
from relaykit.verify.model import (
    CheckResult,
    Expectations,
    Listener,
    expectations_from_spec,
    expectations_to_spec,
    pem_sha256,
)
from relaykit.verify.sink import SinkConfig, SinkThread
from relaykit.verify.suite import format_table, redact, run_suite

PW = "Sup3r-Secret-pw"


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    crt, key, _ = self_signed(tmp_path, "relay.example", "relay")
    return crt, key


def test_format_table_aligns_and_counts() -> None:
    results = [
        CheckResult("banner", "smtp", ok=True, detail="220 hi"),
        CheckResult("auth-PLAIN", "submission", ok=False, detail="535 no"),
        CheckResult("swaks-auth-X", "smtp", ok=True, detail="skipped: why", skipped=True),
    ]
    lines = format_table(results).splitlines()
    assert lines[-1] == "1 passed, 1 failed, 1 skipped"
    assert lines[1].startswith("PASS    smtp        banner")
    assert lines[2].startswith("FAIL    submission  auth-PLAIN")
    assert lines[0].index("CHECK") == lines[1].index("banner")


def test_format_table_summary_without_skips() -> None:
    assert format_table([CheckResult("a", "b", ok=True, detail="")]).endswith("1 passed, 0 failed")


def _exp(sink_dir: Path | None = None) -> Expectations:
    return Expectations(
        listeners=(
            Listener("submission", "127.0.0.1", 2587, "starttls-required", True,
                     frozenset({"PLAIN", "LOGIN"})),
            Listener("smtps", "::1", 2465, "implicit", True, frozenset({"CRAM-MD5"})),
        ),
        user="alice", password=PW, sink_dir=sink_dir, cert_sha256="ab" * 32,
        server_name="relay.example",
    )


def test_spec_round_trip_keeps_password_out(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text(PW + "\n")
    exp = _exp(tmp_path / "sink")
    spec = expectations_to_spec(exp, pw_file)
    text = json.dumps(spec)
    assert PW not in text
    assert expectations_from_spec(json.loads(text)) == exp


def test_spec_reads_cert_pem_file(tmp_path: Path) -> None:
    crt, _key = make_cert(tmp_path)
    pw_file = tmp_path / "pw"
    pw_file.write_text(PW)
    spec = expectations_to_spec(_exp(), pw_file)
    spec["cert_sha256"] = None
    spec["cert_pem_file"] = str(crt)
    assert expectations_from_spec(spec).cert_sha256 == pem_sha256(crt.read_text())


def test_redact_removes_secrets() -> None:
    leaked = [CheckResult("x", "y", ok=False, detail=f"said {PW}")]
    assert PW not in redact(leaked, _exp())[0].detail


@pytest.fixture
def tls_sink(tmp_path: Path) -> tuple[SinkThread, Path, str]:
    crt, key = make_cert(tmp_path)
    cfg = SinkConfig(tmp_path / "sink", ("alice", PW), tls_cert=crt, tls_key=key)
    return SinkThread(cfg).start(), tmp_path / "sink", pem_sha256(crt.read_text())


def test_suite_passes_against_sink_and_can_fail(tls_sink: tuple[SinkThread, Path, str]) -> None:
    sink, sink_dir, pin = tls_sink
    try:
        good = Listener("sink", "127.0.0.1", sink.port, "starttls", True,
                        frozenset({"PLAIN", "LOGIN"}))
        exp = Expectations(listeners=(good,), user="alice", password=PW, sink_dir=sink_dir,
                           sink_timeout=5, cert_sha256=pin, use_swaks=False, timeout=5)
        results = run_suite(exp)
        assert all(r.ok for r in results), format_table(results)
        assert any(r.name == "relay-authenticated" for r in results)
        bad = Listener("sink", "127.0.0.1", sink.port, "starttls", True,
                       frozenset({"PLAIN", "LOGIN", "CRAM-MD5"}))
        failing = run_suite(Expectations(listeners=(bad,), user="alice", password=PW,
                                         cert_sha256="00" * 32, use_swaks=False, timeout=5))
        failed = {r.name for r in failing if not r.ok}
        assert {"ehlo-auth-tls", "tls-handshake", "auth-CRAM-MD5"} <= failed
        assert all(PW not in r.detail for r in results + failing)
    finally:
        sink.stop()


def test_unreachable_listener_fails_without_raising() -> None:
    lst = Listener("gone", "127.0.0.1", 9, "none")
    results = run_suite(Expectations(listeners=(lst,), user="u", password=PW, timeout=2))
    assert results and not any(r.ok for r in results)


def test_spec_round_trip_keeps_abuse_expectations(tmp_path: Path) -> None:
    from dataclasses import replace

    pw_file = tmp_path / "pw"
    pw_file.write_text(PW)
    exp = replace(_exp(), sender="alice@relay.example", foreign_sender="bob@relay.example",
                  granted_sender="alias@relay.example", null_sender_refused=True,
                  extra_sources=("198.51.100.10", "198.51.100.11"), auth_rate_limit=7,
                  throttle_source="198.51.100.20")
    spec = json.loads(json.dumps(expectations_to_spec(exp, pw_file)))
    assert expectations_from_spec(spec) == exp


def test_binding_and_throttle_checks_fail_against_a_permissive_server(
        tls_sink: tuple[SinkThread, Path, str]) -> None:
    """The sink takes any sender and any number of AUTHs: the checks must say so."""
    from relaykit.verify import smtp

    sink, _sink_dir, pin = tls_sink
    try:
        lst = Listener("sink", "127.0.0.1", sink.port, "starttls", True,
                       frozenset({"PLAIN", "LOGIN"}))
        exp = Expectations(listeners=(lst,), user="alice", password=PW, cert_sha256=pin,
                           sender="alice@relay.example", foreign_sender="bob@relay.example",
                           null_sender_refused=True, auth_rate_limit=3, use_swaks=False,
                           timeout=5)
        checks = smtp.check_sender_binding(lst, exp, None, lst.expect_mechanisms)
        binding = {r.name: r for r in checks}
        assert binding["sender-own-address"].ok, binding
        assert not binding["sender-mismatch-refused"].ok
        assert not binding["null-sender-refused"].ok
        throttle = smtp.check_auth_throttle(lst, exp, None, lst.expect_mechanisms)
        assert not throttle.ok and "NO THROTTLE" in throttle.detail
    finally:
        sink.stop()


def test_suite_spreads_auth_over_the_extra_sources() -> None:
    from relaykit.verify.suite import _spread

    exp = Expectations(listeners=(), user="u", password=PW, source_address="198.51.100.2",
                       extra_sources=("198.51.100.10", "198.51.100.11"))
    assert [_spread(exp, i).source_address for i in range(4)] == [
        "198.51.100.2", "198.51.100.10", "198.51.100.11", "198.51.100.2"]
