"""A tiny SMTP sink: accepts mail and stores every message as `<maildir>/<n>.eml`.

It stands in for the upstream smarthost of a relay under test. Optional STARTTLS and
optional mandatory AUTH PLAIN/LOGIN let a Postfix satellite with
`smtp_tls_security_level = encrypt` and SASL client auth deliver to it. The SMTP
protocol, STARTTLS and AUTH are aiosmtpd's (PyPI `aiosmtpd`, Debian python3-aiosmtpd);
this module only decides who may send and where mail goes. Passwords are never logged
(aiosmtpd's own line logging is kept at WARNING, and its AUTH lines are masked anyway).

    python3 -m relaykit.verify.sink --listen 127.0.0.1:2525 --maildir DIR \
        [--require-auth USER:PASSWORD_FILE] [--tls-cert F --tls-key F]

Readiness: once listening it prints `listening on HOST:PORT` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import signal
import ssl
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relaykit.errors import RelaykitError

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

MAX_MESSAGE = 32 * 1024 * 1024
MECHANISMS = ("PLAIN", "LOGIN")


@dataclass(frozen=True)
class SinkConfig:
    maildir: Path
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hostname: str = "sink.relaykit.test"

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        return ctx


def _log(text: str) -> None:
    print(f"sink: {text}", file=sys.stderr, flush=True)


def store_message(maildir: Path, mail_from: str, rcpts: Sequence[str], data: bytes) -> Path:
    """Write atomically (temp + link) so a watcher never reads half a message."""
    maildir.mkdir(parents=True, exist_ok=True)
    head = f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: "
    head += ", ".join(f"<{r}>" for r in rcpts) + "\r\n"
    tmp = maildir / f".tmp-{os.getpid()}-{threading.get_ident()}-{id(data)}"
    tmp.write_bytes(head.encode() + data)
    n = len(list(maildir.glob("*.eml"))) + 1
    while True:
        target = maildir / f"{n}.eml"
        try:
            os.link(tmp, target)  # fails if taken: no overwrite between sessions
        except FileExistsError:
            n += 1
            continue
        tmp.unlink()
        return target


class _Handler:
    """aiosmtpd handler: who may send (authenticator), where mail goes (DATA)."""

    def __init__(self, cfg: SinkConfig) -> None:
        self.cfg = cfg

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.cfg.credentials is None:  # nothing to authenticate against: no AUTH
            return [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        path = store_message(self.cfg.maildir, envelope.mail_from or "", envelope.rcpt_tos,
                             data)
        _log(f"stored {path.name} from=<{envelope.mail_from}> rcpts={len(envelope.rcpt_tos)}")
        return f"250 2.0.0 ok stored as {path.name}"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if self.cfg.credentials is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        want_user, want_pw = self.cfg.credentials
        user = auth_data.login.decode("utf-8", "replace")
        good = hmac.compare_digest(auth_data.login, want_user.encode())
        good = hmac.compare_digest(auth_data.password, want_pw.encode()) and good
        _log(f"auth {'ok' if good else 'failed'} user={user!r}")  # never the password
        return AuthResult(success=good, handled=False)


def _aiosmtpd() -> type[SMTP]:
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError as exc:
        raise RelaykitError("the verify sink needs aiosmtpd, which is not installed",
                            hint="pip install aiosmtpd (or apt-get install python3-aiosmtpd)"
                            ) from exc
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # no protocol lines in logs
    return SMTP


class SinkServer:
    """One listening socket; every connection gets its own aiosmtpd SMTP protocol."""

    def __init__(self, cfg: SinkConfig) -> None:
        self.cfg = cfg
        self.tls = cfg.tls_context()
        self.handler = _Handler(cfg)
        self.smtp_class = _aiosmtpd()
        self.server: asyncio.Server | None = None

    def _protocol(self) -> SMTP:
        with warnings.catch_warnings():
            # AUTH without TLS is what a test asked for (loopback only): no warning.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return self.smtp_class(
                self.handler, hostname=self.cfg.hostname, ident="relaykit sink",
                data_size_limit=MAX_MESSAGE, tls_context=self.tls,
                auth_required=self.cfg.credentials is not None,
                # With a certificate, AUTH only inside TLS, like a sane smarthost.
                auth_require_tls=self.tls is not None,
                authenticator=self.handler.authenticate,
                auth_exclude_mechanism=[] if self.cfg.credentials else list(MECHANISMS),
                loop=asyncio.get_running_loop())

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class SinkThread:
    """Run a sink on an event loop in a background thread (for tests)."""

    def __init__(self, cfg: SinkConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sink = SinkServer(cfg)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True)
        self.port = 0

    def start(self) -> SinkThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("sink did not start")
        return self

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self.port = self._loop.run_until_complete(self._sink.start(host, port))
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._sink.close())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:2525' or '[::1]:2525'."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def read_credentials(text: str) -> tuple[str, str]:
    """'user:/path/to/password-file' -> (user, password)."""
    user, sep, path = text.partition(":")
    if not sep or not user or not path:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD_FILE")
    return user, Path(path).read_text().rstrip("\r\n")


async def serve(cfg: SinkConfig, host: str, port: int) -> None:
    sink = SinkServer(cfg)
    bound = await sink.start(host, port)
    print(f"listening on {host}:{bound}", flush=True)  # readiness line for callers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.close()
    _log("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m relaykit.verify.sink", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 2525))
    ap.add_argument("--maildir", type=Path, required=True)
    ap.add_argument("--require-auth", metavar="USER:PASSWORD_FILE")
    ap.add_argument("--tls-cert", type=Path)
    ap.add_argument("--tls-key", type=Path)
    ap.add_argument("--hostname", default="sink.relaykit.test")
    args = ap.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        ap.error("--tls-cert and --tls-key go together")
    try:
        creds = read_credentials(args.require_auth) if args.require_auth else None
        cfg = SinkConfig(args.maildir, creds, args.tls_cert, args.tls_key, args.hostname)
        host, port = args.listen
        asyncio.run(serve(cfg, host, port))
    except RelaykitError as exc:
        print(f"sink: {exc.render()}", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError) as exc:  # address in use, unreadable cert or password
        print(f"sink: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
