"""Client-side SMTP checks (smtplib + ssl). Every check returns a CheckResult and never raises.

Each check opens its own connection so one failure cannot poison the next check.
"""

from __future__ import annotations

import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from relaykit.verify.digest_md5 import DigestMD5Client
from relaykit.verify.model import CheckResult, Expectations, Listener, der_sha256

HELO_NAME = "relaykit-verify.test"  # fixed: avoids a DNS lookup of the local host name
PROBE_USER = "rk-probe"

# (host, port, timeout, source_address) -> connected socket; lets a caller reach a relay
# through another route (e.g. a socket created inside a network namespace).
SocketFactory = Callable[[str, int, float, str | None], socket.socket]
Reply = tuple[int, str]


def client_tls_context() -> ssl.SSLContext:
    """No CA verification: relays use self-signed certs; we pin the DER hash instead."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _default_factory(host: str, port: int, timeout: float, source: str | None) -> socket.socket:
    src = (source, 0) if source else None
    return socket.create_connection((host, port), timeout, src)


class _SMTP(smtplib.SMTP):
    _host: str
    factory: SocketFactory = _default_factory
    source: str | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.factory(host, port, timeout, self.source)


class _SMTPSSL(smtplib.SMTP_SSL):
    _host: str
    factory: SocketFactory = _default_factory
    source: str | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = self.factory(host, port, timeout, self.source)
        return self.context.wrap_socket(raw, server_hostname=host)


@dataclass
class Session:
    smtp: smtplib.SMTP
    banner: Reply
    mechanisms: frozenset[str]
    peer_sha256: str | None
    tls_info: str


def _reply(code: int, msg: bytes | str) -> Reply:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    return code, " ".join(text.split())


def _mechanisms(smtp: smtplib.SMTP) -> frozenset[str]:
    return frozenset(m.upper() for m in smtp.esmtp_features.get("auth", "").split())


def _peer(smtp: smtplib.SMTP) -> tuple[str | None, str]:
    sock = smtp.sock
    if not isinstance(sock, ssl.SSLSocket):
        return None, "plaintext"
    der = sock.getpeercert(binary_form=True)
    cipher = sock.cipher()
    info = f"{sock.version()} {cipher[0] if cipher else '?'}"
    return (der_sha256(der) if der else None), info


@contextmanager
def open_session(
    lst: Listener, exp: Expectations, *, secure: bool, factory: SocketFactory | None = None
) -> Iterator[Session]:
    """Connect, EHLO, and (if secure and the listener has STARTTLS) upgrade and EHLO again."""
    smtp = _new_client(lst, exp, factory)
    try:
        banner = _reply(*smtp.connect(lst.host, lst.port))
        smtp.ehlo(HELO_NAME)
        if secure and lst.tls in ("starttls", "starttls-required"):
            code, msg = smtp.starttls(context=client_tls_context())
            if code != 220:
                raise smtplib.SMTPResponseException(code, msg)
            smtp.ehlo(HELO_NAME)
        fingerprint, info = _peer(smtp)
        yield Session(smtp, banner, _mechanisms(smtp), fingerprint, info)
    finally:
        _close(smtp)


def _new_client(lst: Listener, exp: Expectations, factory: SocketFactory | None) -> smtplib.SMTP:
    smtp: _SMTP | _SMTPSSL
    if lst.tls == "implicit":
        smtp = _SMTPSSL(local_hostname=HELO_NAME, timeout=exp.timeout,
                        context=client_tls_context())
    else:
        smtp = _SMTP(local_hostname=HELO_NAME, timeout=exp.timeout)
    smtp.factory = factory or _default_factory
    smtp._host = lst.host  # smtplib sets it only in __init__; STARTTLS needs it for SNI
    smtp.source = exp.source_address
    return smtp


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def guarded(name: str, lst: Listener, fn: Callable[[], tuple[bool, str]]) -> CheckResult:
    """Run a check body; any exception becomes a failed result instead of escaping."""
    try:
        ok, detail = fn()
    except Exception as exc:  # a check must never raise
        ok, detail = False, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return CheckResult(name=name, listener=lst.name, ok=ok, detail=detail)


def _fmt_set(items: frozenset[str]) -> str:
    return "{" + " ".join(sorted(items)) + "}" if items else "{}"


# --- banner, EHLO, TLS ---------------------------------------------------------------


def check_banner(lst: Listener, exp: Expectations, f: SocketFactory | None) -> CheckResult:
    def body() -> tuple[bool, str]:
        with open_session(lst, exp, secure=False, factory=f) as s:
            code, text = s.banner
            return code == 220, f"{code} {text}"
    return guarded("banner", lst, body)


def expected_plain_mechanisms(lst: Listener) -> frozenset[str]:
    if lst.auth and (lst.tls == "none" or lst.auth_before_tls):
        return lst.expect_mechanisms
    return frozenset()


def check_ehlo(lst: Listener, exp: Expectations, f: SocketFactory | None,
               *, secure: bool) -> CheckResult:
    want = (lst.expect_mechanisms if lst.auth else frozenset()) if secure else (
        expected_plain_mechanisms(lst))

    def body() -> tuple[bool, str]:
        with open_session(lst, exp, secure=secure, factory=f) as s:
            got = s.mechanisms
            return got == want, f"AUTH offered {_fmt_set(got)}, expected {_fmt_set(want)}"
    return guarded("ehlo-auth-tls" if secure else "ehlo-auth-plain", lst, body)


def check_tls(lst: Listener, exp: Expectations, f: SocketFactory | None) -> CheckResult:
    def body() -> tuple[bool, str]:
        if lst.tls != "implicit":
            with open_session(lst, exp, secure=False, factory=f) as s:
                if not s.smtp.has_extn("starttls"):
                    return False, "STARTTLS not advertised"
        with open_session(lst, exp, secure=True, factory=f) as s:
            got = s.peer_sha256 or ""
            if exp.cert_sha256 is None:
                return True, f"{s.tls_info}; cert sha256 {got[:16]}... (no pin given)"
            ok = got == exp.cert_sha256
            verdict = "matches pin" if ok else f"!= expected {exp.cert_sha256[:16]}..."
            return ok, f"{s.tls_info}; cert sha256 {got[:16]}... {verdict}"
    return guarded("tls-handshake", lst, body)


def check_tls_required(lst: Listener, exp: Expectations, f: SocketFactory | None) -> CheckResult:
    """A STARTTLS-required listener must refuse a mail transaction in plaintext."""
    def body() -> tuple[bool, str]:
        with open_session(lst, exp, secure=False, factory=f) as s:
            code, text = _reply(*s.smtp.docmd("MAIL", f"FROM:<{_sender(exp)}>"))
            return 500 <= code < 600, f"MAIL before STARTTLS: {code} {text}"
    return guarded("tls-required", lst, body)


# --- AUTH ----------------------------------------------------------------------------


def authenticate(s: Session, lst: Listener, exp: Expectations, mech: str,
                 password: str) -> Reply:
    """Run one AUTH exchange; returns the final reply (235 on success)."""
    smtp = s.smtp
    smtp.user, smtp.password = exp.user, password
    digest = DigestMD5Client(exp.user, password, "smtp", exp.server_name or lst.host)
    try:
        if mech == "DIGEST-MD5":
            code, msg = smtp.auth(mech, digest, initial_response_ok=False)
        elif mech == "CRAM-MD5":
            code, msg = smtp.auth(mech, smtp.auth_cram_md5, initial_response_ok=False)
        elif mech == "LOGIN":
            code, msg = smtp.auth(mech, smtp.auth_login, initial_response_ok=False)
        elif mech == "PLAIN":
            code, msg = smtp.auth(mech, smtp.auth_plain, initial_response_ok=True)
        else:  # never hand credentials to a mechanism we do not implement
            return 0, f"client does not implement {mech}"
    except smtplib.SMTPAuthenticationError as exc:
        return _reply(exc.smtp_code, exc.smtp_error)
    finally:
        smtp.password = ""
    if code == 235 and mech == "DIGEST-MD5" and not digest.server_verified:
        return 599, "server rspauth did not verify (server does not know the password)"
    return _reply(code, msg)


def check_auth(lst: Listener, exp: Expectations, f: SocketFactory | None, mech: str,
               *, wrong: bool) -> CheckResult:
    want = 535 if wrong else 235

    def body() -> tuple[bool, str]:
        with open_session(lst, exp, secure=True, factory=f) as s:
            pw = exp.wrong_password if wrong else exp.password
            code, text = authenticate(s, lst, exp, mech, pw)
            return code == want, f"{code} {text} (expected {want})"
    suffix = "-wrong-password" if wrong else ""
    return guarded(f"auth-{mech}{suffix}", lst, body)


def preferred_mechanism(mechs: frozenset[str]) -> str | None:
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"):
        if mech in mechs:
            return mech
    return None


# --- relay ---------------------------------------------------------------------------


def _sender(exp: Expectations) -> str:
    return exp.sender or f"rk-verify@{exp.local_sender_domain}"


def relay_tricks(exp: Expectations) -> dict[str, str]:
    """Classic address forms that fooled old relays into relaying (RFC 2505 section 2.5)."""
    u, foreign, own = PROBE_USER, exp.foreign_domain, exp.own_domain
    return {
        "percent-hack": f"{u}%{foreign}@{own}",
        "quoted-local-part": f'"{u}@{foreign}"@{own}',
        "source-route": f"@{own}:{u}@{foreign}",
        "bang-path": f"{foreign}!{u}@{own}",
        "double-at": f"{u}@{foreign}@{own}",
    }


def try_unauth_relay(lst: Listener, exp: Expectations, f: SocketFactory | None,
                     rcpt: str) -> tuple[str, Reply]:
    """MAIL + RCPT without AUTH; raw commands because smtplib would rewrite odd addresses."""
    with open_session(lst, exp, secure=True, factory=f) as s:
        mail = _reply(*s.smtp.docmd("MAIL", f"FROM:<{_sender(exp)}>"))
        if mail[0] != 250:
            return "MAIL", mail
        return "RCPT", _reply(*s.smtp.docmd("RCPT", f"TO:<{rcpt}>"))


def judge_refusal(stage: str, reply: Reply) -> tuple[bool, str]:
    code, text = reply
    where = f"{stage} {code} {text}"
    if 500 <= code < 600:
        return True, f"refused: {where}"
    if code == 250:
        return False, f"OPEN RELAY: accepted at {where}"
    if 400 <= code < 500:
        return False, f"only temporarily refused (clients retry; want 5xx): {where}"
    return False, f"unexpected reply: {where}"


def check_unauth_relay(lst: Listener, exp: Expectations, f: SocketFactory | None,
                       name: str, rcpt: str) -> CheckResult:
    def body() -> tuple[bool, str]:
        stage, reply = try_unauth_relay(lst, exp, f, rcpt)
        ok, detail = judge_refusal(stage, reply)
        return ok, f"<{rcpt}> {detail}"
    return guarded(name, lst, body)


def check_auth_relay(lst: Listener, exp: Expectations, f: SocketFactory | None,
                     offered: frozenset[str]) -> CheckResult:
    def body() -> tuple[bool, str]:
        mech = preferred_mechanism(offered or lst.expect_mechanisms)
        if mech is None:
            return False, "no usable AUTH mechanism offered"
        token = f"rk-{secrets.token_hex(12)}"
        with open_session(lst, exp, secure=True, factory=f) as s:
            code, text = authenticate(s, lst, exp, mech, exp.password)
            if code != 235:
                return False, f"AUTH {mech}: {code} {text}"
            reply = _send(s.smtp, exp, token)
        if reply[0] != 250:
            return False, f"{mech}: {reply[0]} {reply[1]}"
        if exp.sink_dir is None:
            return True, f"{mech}: accepted ({reply[1]}); sink not checked (no sink_dir)"
        found = wait_for_token(exp.sink_dir, token, exp.sink_timeout)
        if found is None:
            return False, f"accepted but {token} not in sink after {exp.sink_timeout:.0f}s"
        return True, f"{mech}: accepted, arrived in sink as {found.name}"
    return guarded("relay-authenticated", lst, body)


def _send(smtp: smtplib.SMTP, exp: Expectations, token: str) -> Reply:
    rcpt = f"rk-sink@{exp.foreign_domain}"
    for cmd, arg in (("MAIL", f"FROM:<{_sender(exp)}>"), ("RCPT", f"TO:<{rcpt}>")):
        reply = _reply(*smtp.docmd(cmd, arg))
        if reply[0] != 250:
            return reply[0], f"{cmd}: {reply[1]}"
    msg = (
        f"From: <{_sender(exp)}>\r\nTo: <{rcpt}>\r\nSubject: relaykit verify {token}\r\n"
        f"Message-ID: <{token}@{exp.local_sender_domain}>\r\n\r\nrelaykit token {token}\r\n"
    )
    return _reply(*smtp.data(msg.encode()))


def wait_for_token(sink_dir: Path, token: str, timeout: float) -> Path | None:
    """Poll the sink directory until a stored message contains the token."""
    needle = token.encode()
    deadline = time.monotonic() + timeout
    while True:
        for path in sorted(sink_dir.glob("*.eml")):
            try:
                if needle in path.read_bytes():
                    return path
            except OSError:
                continue
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


# --- abuse: sender binding and the AUTH throttle ---------------------------------------


def _envelope(smtp: smtplib.SMTP, sender: str, rcpt: str) -> Reply:
    """MAIL + RCPT, then RSET; the first non-250 reply, or the RCPT's 250."""
    try:
        for cmd, arg in (("MAIL", f"FROM:<{sender}>"), ("RCPT", f"TO:<{rcpt}>")):
            code, text = _reply(*smtp.docmd(cmd, arg))
            if code != 250:
                return code, f"{cmd}: {text}"
        return code, f"RCPT: {text}"
    finally:
        smtp.docmd("RSET")


def check_sender_binding(lst: Listener, exp: Expectations, f: SocketFactory | None,
                         offered: frozenset[str]) -> list[CheckResult]:
    """After AUTH: the user's own address 250 (and one granted to them), another
    user's address 5xx, and `<>` 5xx when the profile refuses it.  One AUTH for all
    of them (anvil counts AUTHs)."""
    rcpt = f"rk-sink@{exp.foreign_domain}"
    cases = [("sender-own-address", _sender(exp), 250)]
    if exp.granted_sender:
        cases.append(("sender-granted-address", exp.granted_sender, 250))
    if exp.foreign_sender:
        cases.append(("sender-mismatch-refused", exp.foreign_sender, 5))
    if exp.null_sender_refused:
        cases.append(("null-sender-refused", "", 5))
    replies: dict[str, Reply] = {}

    def body() -> tuple[bool, str]:
        mech = preferred_mechanism(offered or lst.expect_mechanisms)
        if mech is None:
            return False, "no usable AUTH mechanism offered"
        with open_session(lst, exp, secure=True, factory=f) as s:
            code, text = authenticate(s, lst, exp, mech, exp.password)
            if code != 235:
                return False, f"AUTH {mech}: {code} {text}"
            for name, sender, _ in cases:
                replies[name] = _envelope(s.smtp, sender, rcpt)
        return True, ""

    session = guarded("sender-binding", lst, body)
    if not session.ok:
        return [session]
    out = []
    for name, sender, want in cases:
        code, text = replies[name]
        ok = code == want if want == 250 else 500 <= code < 600
        out.append(CheckResult(name, lst.name, ok, f"<{sender}> as {exp.user}: {code} {text}"))
    return out


def check_auth_throttle(lst: Listener, exp: Expectations, f: SocketFactory | None,
                        offered: frozenset[str]) -> CheckResult:
    """Wrong passwords from one fresh address, one connection each as a brute-force
    tool does: the relay must answer 4xx once the AUTH limit is spent, not before."""
    limit = exp.auth_rate_limit
    src = replace(exp, source_address=exp.throttle_source or exp.source_address)

    def body() -> tuple[bool, str]:
        mech = preferred_mechanism(offered or lst.expect_mechanisms)
        if mech is None:
            return False, "no usable AUTH mechanism offered"
        start = time.monotonic()
        for attempt in range(1, limit + 3):
            with open_session(lst, src, secure=True, factory=f) as s:
                code, text = authenticate(s, lst, src, mech, src.wrong_password)
            took = time.monotonic() - start
            if 400 <= code < 500:
                ok = attempt == limit + 1
                return ok, (f"attempt {attempt} answered {code} {text} after {took:.1f} s "
                            f"(limit {limit}: want 4xx at attempt {limit + 1})")
            if code != 535:
                return False, f"attempt {attempt}: {code} {text} (want 535, then 4xx)"
        return False, f"no 4xx after {limit + 2} wrong passwords: NO THROTTLE"
    return guarded("auth-throttle", lst, body)
