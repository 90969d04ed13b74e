"""The sink stores mail, enforces AUTH when asked, and speaks STARTTLS."""

from __future__ import annotations

import shutil
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit.verify.harness.testbed import self_signed
from relaykit.verify.sink import SinkConfig, SinkThread, parse_listen


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    crt, key, _ = self_signed(tmp_path, "sink.relaykit.test", "sink")
    return crt, key


@pytest.fixture
def plain_sink(tmp_path: Path) -> Iterator[SinkThread]:
    sink = SinkThread(SinkConfig(tmp_path / "mail")).start()
    yield sink
    sink.stop()


def _ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def test_stores_message_with_envelope(plain_sink: SinkThread, tmp_path: Path) -> None:
    with smtplib.SMTP("127.0.0.1", plain_sink.port, timeout=5) as smtp:
        smtp.sendmail("a@x.example", ["b@y.example", "c@z.example"],
                      b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n")
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert [f.name for f in files] == ["1.eml"]
    text = files[0].read_bytes().decode()
    assert "X-Envelope-From: <a@x.example>" in text
    assert "X-Envelope-To: <b@y.example>, <c@z.example>" in text
    assert ".leading dot" in text and "\r\nbody\r\n" in text


def test_requires_auth_and_checks_password(tmp_path: Path) -> None:
    cfg = SinkConfig(tmp_path / "mail", credentials=("u", "pw-Secret"))
    sink = SinkThread(cfg).start()
    try:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
            smtp.ehlo()
            assert smtp.docmd("MAIL", "FROM:<a@x.example>")[0] == 530
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("u", "wrong")
            assert smtp.login("u", "pw-Secret")[0] == 235
            smtp.sendmail("a@x.example", ["b@y.example"], b"Subject: ok\r\n\r\nx\r\n")
    finally:
        sink.stop()
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


def test_auth_only_after_starttls(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    cfg = SinkConfig(tmp_path / "mail", ("u", "pw"), tls_cert=cert[0], tls_key=cert[1])
    sink = SinkThread(cfg).start()
    try:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
            smtp.starttls(context=_ctx())
            smtp.ehlo()
            assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
            smtp.user, smtp.password = "u", "pw"
            assert smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)[0] == 235
    finally:
        sink.stop()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_listen("[::1]:25") == ("::1", 25)
