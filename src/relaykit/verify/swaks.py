"""AUTH checks with swaks, an independent client, to catch bugs shared by our own code.

The password reaches swaks through the SWAKS_OPT_auth_password environment variable
(readable only by the same user), never argv, and swaks' transcript is never reported:
only the status code of the server's final AUTH reply is.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from relaykit.verify.model import CheckResult, Expectations, Listener
from relaykit.verify.smtp import HELO_NAME

SWAKS_MECHANISMS = frozenset({"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"})
_REPLY = re.compile(r"^<[-~*]+\s+(\d{3})[ -]")
_AUTH_CMD = re.compile(r"^\s*[-~*]*>\s+AUTH\b")


@functools.cache
def unsupported_reason(mech: str) -> str | None:
    """Why swaks cannot test this mechanism here, or None if it can."""
    if shutil.which("swaks") is None:
        return "swaks not installed"
    if mech not in SWAKS_MECHANISMS:
        return f"swaks does not implement {mech}"
    if mech == "DIGEST-MD5":
        probe = subprocess.run(
            ["perl", "-MAuthen::SASL::Perl::DIGEST_MD5", "-e", "1"],
            capture_output=True, check=False,
        )
        if probe.returncode != 0:
            return "DIGEST-MD5 needs Authen::SASL (libauthen-sasl-perl), not installed"
    return None


def swaks_argv(lst: Listener, exp: Expectations, mech: str) -> list[str]:
    """Command line without any secret (the password travels in the environment)."""
    argv = [
        "swaks", "--server", lst.host, "--port", str(lst.port),
        "--auth", mech, "--auth-user", exp.user, "--auth-hide-password",
        "--quit-after", "AUTH", "--timeout", str(max(1, int(exp.timeout))),
        "--helo", HELO_NAME, "--from", f"rk-verify@{exp.local_sender_domain}",
        "--to", f"postmaster@{exp.own_domain}",
    ]
    if lst.tls in ("starttls", "starttls-required"):
        argv.append("--tls")
    elif lst.tls == "implicit":
        argv.append("--tls-on-connect")
    if exp.source_address:
        argv += ["--local-interface", exp.source_address]
    return argv


def auth_reply_code(transcript: str) -> int | None:
    """Status of the server's final reply to AUTH (after any 334 rounds) in a transcript."""
    in_auth, code = False, None
    for line in transcript.splitlines():
        if _AUTH_CMD.match(line):
            in_auth = True
            continue
        m = _REPLY.match(line)
        if in_auth and m and m.group(1) != "334":
            code, in_auth = int(m.group(1)), False
    return code


def check_swaks(lst: Listener, exp: Expectations, mech: str, *, wrong: bool) -> CheckResult:
    name = f"swaks-auth-{mech}" + ("-wrong-password" if wrong else "")
    reason = unsupported_reason(mech)
    if reason is not None:
        return CheckResult(name, lst.name, ok=True, detail=f"skipped: {reason}", skipped=True)
    want = 535 if wrong else 235
    env = dict(os.environ)
    env["SWAKS_OPT_auth_password"] = exp.wrong_password if wrong else exp.password
    try:
        proc = subprocess.run(
            swaks_argv(lst, exp, mech), env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=exp.timeout * 3, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(name, lst.name, ok=False, detail=f"swaks: {type(exc).__name__}")
    code = auth_reply_code(proc.stdout + proc.stderr)
    detail = f"swaks exit {proc.returncode}, last reply {code} (expected {want})"
    return CheckResult(name, lst.name, ok=code == want, detail=detail)
