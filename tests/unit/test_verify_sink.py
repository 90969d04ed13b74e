"""The sink stores mail, enforces AUTH when asked, speaks STARTTLS, and its CLI keeps
the contract its callers rely on (readiness line, clean stop, clear errors). Real
smtplib clients over loopback; no mock."""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit.verify.harness.testbed import self_signed
from relaykit.verify.sink import SinkConfig, SinkThread, parse_listen

SECRET = "pw-Secret-9f3a"
MESSAGE = b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    crt, key, _ = self_signed(tmp_path, "sink.relaykit.test", "sink")
    return crt, key


def _started(cfg: SinkConfig) -> Iterator[SinkThread]:
    sink = SinkThread(cfg).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def plain_sink(tmp_path: Path) -> Iterator[SinkThread]:
    yield from _started(SinkConfig(tmp_path / "mail"))


@pytest.fixture
def auth_sink(tmp_path: Path) -> Iterator[SinkThread]:
    yield from _started(SinkConfig(tmp_path / "mail", credentials=("u", SECRET)))


@pytest.fixture
def tls_auth_sink(tmp_path: Path, cert: tuple[Path, Path]) -> Iterator[SinkThread]:
    yield from _started(SinkConfig(tmp_path / "mail", ("u", SECRET), *cert))


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def _stored(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "mail").glob("*.eml"))


def test_stores_message_with_envelope(plain_sink: SinkThread, tmp_path: Path) -> None:
    with smtplib.SMTP("127.0.0.1", plain_sink.port, timeout=5) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")  # no credentials configured: nothing to offer
        smtp.sendmail("a@x.example", ["b@y.example", "c@z.example"], MESSAGE)
        smtp.sendmail("d@x.example", ["e@y.example"], MESSAGE)
    files = _stored(tmp_path)
    assert [f.name for f in files] == ["1.eml", "2.eml"]
    text = files[0].read_bytes().decode()
    assert text.startswith("X-Envelope-From: <a@x.example>\r\n"
                           "X-Envelope-To: <b@y.example>, <c@z.example>\r\n")
    assert "\r\n.leading dot\r\nbody\r\n" in text  # dot-unstuffed once, CRLF kept
    assert not list((tmp_path / "mail").glob(".tmp-*"))


def test_mail_before_auth_is_refused(auth_sink: SinkThread, tmp_path: Path) -> None:
    with smtplib.SMTP("127.0.0.1", auth_sink.port, timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.docmd("MAIL", "FROM:<a@x.example>")[0] == 530
        assert smtp.docmd("RCPT", "TO:<b@y.example>")[0] == 530
        assert smtp.docmd("DATA")[0] == 530
    assert _stored(tmp_path) == []


@pytest.mark.parametrize(("user", "password"), [("u", "wrong"), ("x", SECRET), ("", SECRET),
                                                ("u", SECRET + "x"), ("u", "")])
def test_wrong_credentials_are_refused(auth_sink: SinkThread, user: str, password: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with smtplib.SMTP("127.0.0.1", auth_sink.port, timeout=5) as smtp:
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.login(user, password)
        assert err.value.smtp_code == 535
        assert smtp.docmd("MAIL", "FROM:<a@x.example>")[0] == 530
    assert "auth failed" in capsys.readouterr().err


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_right_credentials_deliver_and_the_password_is_never_logged(
        auth_sink: SinkThread, tmp_path: Path, mechanism: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    with smtplib.SMTP("127.0.0.1", auth_sink.port, timeout=5) as smtp:
        smtp.ehlo()
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        smtp.user, smtp.password = "u", SECRET
        auth = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        assert smtp.auth(mechanism, auth)[0] == 235
        assert smtp.docmd("AUTH", "PLAIN")[0] == 503  # once is enough
        smtp.sendmail("a@x.example", ["b@y.example"], MESSAGE)
    assert len(_stored(tmp_path)) == 1
    log = capsys.readouterr()
    assert "auth ok user='u'" in log.err
    assert SECRET not in log.err + log.out


def test_auth_only_after_starttls(tls_auth_sink: SinkThread, tmp_path: Path) -> None:
    with smtplib.SMTP("127.0.0.1", tls_auth_sink.port, timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        code, _ = smtp.docmd("AUTH", "PLAIN AHUAcHctU2VjcmV0LTlmM2E=")  # \0u\0SECRET
        assert code == 538  # refused in clear text, even with the right password
        smtp.starttls(context=_ctx())
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert smtp.login("u", SECRET)[0] == 235
        smtp.sendmail("a@x.example", ["b@y.example"], MESSAGE)
    assert len(_stored(tmp_path)) == 1


def test_tls_without_credentials_offers_no_auth(tmp_path: Path, cert: tuple[Path, Path]
                                                ) -> None:
    for sink in _started(SinkConfig(tmp_path / "mail", None, *cert)):
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
            smtp.starttls(context=_ctx())
            smtp.ehlo()
            assert not smtp.has_extn("auth")
            smtp.sendmail("a@x.example", ["b@y.example"], MESSAGE)
    assert len(_stored(tmp_path)) == 1


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_listen("[::1]:25") == ("::1", 25)


# --- the CLI, as testbed.sink and the Postfix test run it ---------------------------------

def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "relaykit.verify.sink", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


def test_cli_serves_tls_and_auth_and_stops_on_sigterm(tmp_path: Path,
                                                      cert: tuple[Path, Path]) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET + "\n")
    argv = _cli("--listen", "127.0.0.1:0", "--maildir", str(tmp_path / "mail"),
                "--require-auth", f"u:{pw}", "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]))
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("listening on 127.0.0.1:"), ready
        port = int(ready.rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.starttls(context=_ctx())
            smtp.login("u", SECRET)
            smtp.sendmail("a@x.example", ["b@y.example"], MESSAGE)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "stored 1.eml" in err and SECRET not in err
    assert len(_stored(tmp_path)) == 1


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = subprocess.run(_cli("--listen", "127.0.0.1:0", "--maildir", str(tmp_path),
                                  "--require-auth", f"u:{tmp_path / 'nope'}"),
                             env=_env(), capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
    half_tls = subprocess.run(_cli("--maildir", str(tmp_path), "--tls-cert", "x"),
                              env=_env(), capture_output=True, text=True, timeout=30)
    assert half_tls.returncode == 2 and "go together" in half_tls.stderr
