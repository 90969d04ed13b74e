"""Run every conformance check against every listener; CLI for use inside a namespace.

    python3 -m relaykit.verify.suite --spec spec.json [--table]

prints the results as JSON on stdout (or a table with --table); exit status 0 only if
every check passed. A caller puts the client where it must be, e.g.
`ip netns exec NS python3 -m relaykit.verify.suite ...` or `nsenter -t PID -n ...`;
`run_suite_via()` does exactly that from Python.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from relaykit.verify import smtp, swaks
from relaykit.verify.model import (
    CheckResult,
    Expectations,
    Listener,
    expectations_from_spec,
    expectations_to_spec,
)
from relaykit.verify.smtp import SocketFactory


def _probe_mechanisms(lst: Listener, exp: Expectations, f: SocketFactory | None) -> frozenset[str]:
    """What the listener offers once secured; empty if it cannot be reached."""
    try:
        with smtp.open_session(lst, exp, secure=True, factory=f) as s:
            return s.mechanisms
    except Exception:  # reachability failures are reported by the banner/TLS checks
        return frozenset()


def check_listener(lst: Listener, exp: Expectations, f: SocketFactory | None = None,
                   *, use_swaks: bool = True) -> list[CheckResult]:
    out = [smtp.check_banner(lst, exp, f)]
    if lst.tls != "implicit":
        out.append(smtp.check_ehlo(lst, exp, f, secure=False))
    if lst.has_tls:
        out += [smtp.check_tls(lst, exp, f), smtp.check_ehlo(lst, exp, f, secure=True)]
    if lst.tls == "starttls-required":
        out.append(smtp.check_tls_required(lst, exp, f))
    offered = _probe_mechanisms(lst, exp, f) if lst.auth else frozenset()
    mechs = sorted(lst.expect_mechanisms | offered) if lst.auth else []
    for i, mech in enumerate(mechs):
        e = _spread(exp, i)
        out.append(smtp.check_auth(lst, e, f, mech, wrong=False))
        out.append(smtp.check_auth(lst, e, f, mech, wrong=True))
    out += _relay_checks(lst, exp, f)
    if lst.auth:
        out.append(smtp.check_auth_relay(lst, exp, f, offered))
        out += smtp.check_sender_binding(lst, _spread(exp, len(mechs)), f, offered)
    if use_swaks:
        for i, mech in enumerate(mechs):
            e = _spread(exp, len(mechs) + 1 + i)
            out.append(swaks.check_swaks(lst, e, mech, wrong=False))
            out.append(swaks.check_swaks(lst, e, mech, wrong=True))
    if lst.auth and exp.auth_rate_limit:
        out.append(smtp.check_auth_throttle(lst, exp, f, offered))
    return out


def _spread(exp: Expectations, i: int) -> Expectations:
    """The i-th source address: the relay's AUTH limits count per client address, and
    the suite is one client that logs in many times on purpose."""
    sources = (exp.source_address, *exp.extra_sources)
    return replace(exp, source_address=sources[i % len(sources)])


def _relay_checks(lst: Listener, exp: Expectations, f: SocketFactory | None) -> list[CheckResult]:
    foreign = f"{smtp.PROBE_USER}@{exp.foreign_domain}"
    out = [smtp.check_unauth_relay(lst, exp, f, "relay-unauthenticated", foreign)]
    for trick, rcpt in smtp.relay_tricks(exp).items():
        out.append(smtp.check_unauth_relay(lst, exp, f, f"relay-trick-{trick}", rcpt))
    return out


def secret_forms(exp: Expectations) -> list[str]:
    """The passwords and their base64 forms, longest first, for redaction."""
    forms: set[str] = set()
    for pw in (exp.password, exp.wrong_password):
        if len(pw) >= 3:
            forms |= {pw, base64.b64encode(pw.encode()).decode()}
    return sorted(forms, key=len, reverse=True)


def redact(results: Sequence[CheckResult], exp: Expectations) -> list[CheckResult]:
    """Belt and braces: no check should echo a secret, but never let one through."""
    forms = secret_forms(exp)
    out = []
    for r in results:
        detail = r.detail
        for form in forms:
            detail = detail.replace(form, "[redacted]")
        out.append(replace(r, detail=detail))
    return out


def run_suite(exp: Expectations, *, connect: SocketFactory | None = None) -> list[CheckResult]:
    """All checks for all listeners. `connect` replaces socket creation for the smtplib
    checks; swaks cannot use it, so swaks checks are skipped when it is given."""
    results: list[CheckResult] = []
    for lst in exp.listeners:
        use_swaks = exp.use_swaks and connect is None
        results += check_listener(lst, exp, connect, use_swaks=use_swaks)
    return redact(results, exp)


def format_table(results: Sequence[CheckResult]) -> str:
    """Aligned table; last line 'N passed, M failed' (plus skipped, if any)."""
    rows = [("RESULT", "LISTENER", "CHECK", "DETAIL")]
    for r in results:
        status = "SKIP" if r.skipped else ("PASS" if r.ok else "FAIL")
        rows.append((status, r.listener, r.name, r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    passed = sum(1 for r in results if r.ok and not r.skipped)
    failed = sum(1 for r in results if not r.ok)
    skipped = sum(1 for r in results if r.skipped)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    return "\n".join([line.rstrip() for line in lines] + [summary])


def _package_root() -> str:
    # The directory that contains the `relaykit` package, for PYTHONPATH in a child.
    return str(Path(__file__).resolve().parents[2])


def run_suite_via(exp: Expectations, runner: Sequence[str], *,
                  timeout: float = 900.0) -> list[CheckResult]:
    """Run the suite in a child process prefixed by `runner`, e.g.
    ["ip", "netns", "exec", "rk-cli"] or ["nsenter", "-t", PID, "-n"]. The password goes
    through a 0600 temp file whose path is in the spec, never through argv."""
    with tempfile.TemporaryDirectory(prefix="rk-verify-") as tmp:
        pw_file = Path(tmp) / "password"
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(exp.password)
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(expectations_to_spec(exp, pw_file)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(),
                                                          env.get("PYTHONPATH")]))
        argv = [*runner, sys.executable, "-m", "relaykit.verify.suite", "--spec", str(spec_file)]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return [CheckResult("suite-run", "-", ok=False,
                            detail=f"runner exit {proc.returncode}: {tail[0]}")]
    return redact([CheckResult.from_json(item) for item in data["results"]], exp)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m relaykit.verify.suite", description=__doc__)
    ap.add_argument("--spec", type=Path, required=True, help="JSON spec (see model.py)")
    ap.add_argument("--table", action="store_true", help="print a table instead of JSON")
    args = ap.parse_args(argv)
    exp = expectations_from_spec(json.loads(args.spec.read_text()))
    results = run_suite(exp)
    if args.table:
        print(format_table(results))
    else:
        print(json.dumps({"results": [r.to_json() for r in results]}, indent=1))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
