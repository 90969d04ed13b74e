"""A tiny SMTP sink: accepts mail and stores every message as `<maildir>/<n>.eml`.

It stands in for the upstream smarthost of a relay under test. Optional STARTTLS and
optional mandatory AUTH PLAIN/LOGIN let a Postfix satellite with
`smtp_tls_security_level = encrypt` and SASL client auth deliver to it. Stdlib only
(smtpd/aiosmtpd are gone from recent Pythons). Passwords are never logged.

    python3 -m relaykit.verify.sink --listen 127.0.0.1:2525 --maildir DIR \
        [--require-auth USER:PASSWORD_FILE] [--tls-cert F --tls-key F]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import os
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_MESSAGE = 32 * 1024 * 1024
MAX_LINE = 64 * 1024


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
    """Write atomically (temp + rename) so a watcher never reads half a message."""
    maildir.mkdir(parents=True, exist_ok=True)
    head = f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: "
    head += ", ".join(f"<{r}>" for r in rcpts) + "\r\n"
    tmp = maildir / f".tmp-{os.getpid()}-{threading.get_ident()}-{id(data)}"
    tmp.write_bytes(head.encode() + data)
    n = len([p for p in maildir.glob("*.eml")]) + 1
    while True:
        target = maildir / f"{n}.eml"
        try:
            os.link(tmp, target)  # fails if taken: no overwrite between sessions
        except FileExistsError:
            n += 1
            continue
        tmp.unlink()
        return target


class _Session:
    """One SMTP conversation."""

    def __init__(
        self, cfg: SinkConfig, tls: ssl.SSLContext | None,
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        self.cfg, self.tls, self.reader, self.writer = cfg, tls, reader, writer
        self.secure = False
        self.user: str | None = None
        self.mail_from: str | None = None
        self.rcpts: list[str] = []

    async def reply(self, text: str) -> None:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()

    async def readline(self) -> str:
        line = await self.reader.readline()
        if not line:
            raise ConnectionResetError("client went away")
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def ehlo_lines(self) -> list[str]:
        lines = [self.cfg.hostname, "PIPELINING", "8BITMIME", f"SIZE {MAX_MESSAGE}"]
        if self.tls is not None and not self.secure:
            lines.append("STARTTLS")
        if self._auth_allowed():
            lines.append("AUTH PLAIN LOGIN")
        return lines

    def _auth_allowed(self) -> bool:
        # With a certificate, AUTH is only offered inside TLS, like a sane smarthost.
        return self.cfg.credentials is not None and (self.tls is None or self.secure)

    async def run(self) -> None:
        await self.reply(f"220 {self.cfg.hostname} ESMTP relaykit sink")
        while True:
            line = await self.readline()
            verb, _, arg = line.partition(" ")
            if not await self.dispatch(verb.upper(), arg.strip()):
                return

    async def dispatch(self, verb: str, arg: str) -> bool:
        if verb == "QUIT":
            await self.reply("221 2.0.0 bye")
            return False
        handler = {
            "EHLO": self.do_ehlo, "HELO": self.do_helo, "STARTTLS": self.do_starttls,
            "AUTH": self.do_auth, "MAIL": self.do_mail, "RCPT": self.do_rcpt,
            "DATA": self.do_data, "RSET": self.do_rset, "NOOP": self.do_noop,
        }.get(verb)
        if handler is None:
            await self.reply("502 5.5.2 command not recognized")
        else:
            await handler(arg)
        return True

    async def do_ehlo(self, arg: str) -> None:
        self.reset()
        lines = self.ehlo_lines()
        for item in lines[:-1]:
            await self.reply(f"250-{item}")
        await self.reply(f"250 {lines[-1]}")

    async def do_helo(self, arg: str) -> None:
        self.reset()
        await self.reply(f"250 {self.cfg.hostname}")

    async def do_noop(self, arg: str) -> None:
        await self.reply("250 2.0.0 ok")

    async def do_rset(self, arg: str) -> None:
        self.reset()
        await self.reply("250 2.0.0 ok")

    def reset(self) -> None:
        self.mail_from, self.rcpts = None, []

    async def do_starttls(self, arg: str) -> None:
        if self.tls is None or self.secure:
            await self.reply("502 5.5.1 STARTTLS not available")
            return
        await self.reply("220 2.0.0 ready to start TLS")
        await self.writer.start_tls(self.tls)
        self.secure, self.user = True, None  # RFC 3207: forget everything
        self.reset()

    async def do_auth(self, arg: str) -> None:
        if not self._auth_allowed():
            await self.reply("503 5.5.1 AUTH not available")
            return
        if self.user is not None:
            await self.reply("503 5.5.1 already authenticated")
            return
        mech, _, initial = arg.partition(" ")
        creds = await self._collect(mech.upper(), initial.strip())
        if creds is None:
            return
        await self._judge(*creds)

    async def _collect(self, mech: str, initial: str) -> tuple[str, str] | None:
        try:
            if mech == "PLAIN":
                raw = initial if initial and initial != "=" else await self._ask("")
                _authz, user, password = _b64(raw).split("\0", 2)
                return user, password
            if mech == "LOGIN":
                user = _b64(initial) if initial else _b64(await self._ask("VXNlcm5hbWU6"))
                return user, _b64(await self._ask("UGFzc3dvcmQ6"))
        except (ValueError, binascii.Error):
            await self.reply("501 5.5.2 cannot decode AUTH data")
            return None
        except _Cancelled:
            await self.reply("501 5.7.0 AUTH aborted")
            return None
        await self.reply("504 5.5.4 mechanism not supported")
        return None

    async def _ask(self, prompt: str) -> str:
        await self.reply(f"334 {prompt}")
        answer = await self.readline()
        if answer == "*":
            raise _Cancelled
        return answer

    async def _judge(self, user: str, password: str) -> None:
        assert self.cfg.credentials is not None
        want_user, want_pw = self.cfg.credentials
        good = hmac.compare_digest(user.encode(), want_user.encode())
        good = hmac.compare_digest(password.encode(), want_pw.encode()) and good
        if good:
            self.user = user
            _log(f"auth ok user={user!r}")
            await self.reply("235 2.7.0 authentication successful")
        else:
            _log(f"auth failed user={user!r}")  # never the password
            await self.reply("535 5.7.8 authentication failed")

    async def do_mail(self, arg: str) -> None:
        if self.cfg.credentials is not None and self.user is None:
            await self.reply("530 5.7.0 authentication required")
            return
        if not arg.upper().startswith("FROM:"):
            await self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        self.reset()
        self.mail_from = _address(arg[5:])
        await self.reply("250 2.1.0 ok")

    async def do_rcpt(self, arg: str) -> None:
        if self.mail_from is None:
            await self.reply("503 5.5.1 need MAIL first")
            return
        if not arg.upper().startswith("TO:"):
            await self.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return
        self.rcpts.append(_address(arg[3:]))
        await self.reply("250 2.1.5 ok")

    async def do_data(self, arg: str) -> None:
        if self.mail_from is None or not self.rcpts:
            await self.reply("503 5.5.1 need MAIL and RCPT first")
            return
        await self.reply("354 end data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:
            await self.reply("552 5.3.4 message too big")
        else:
            path = store_message(self.cfg.maildir, self.mail_from, self.rcpts, data)
            _log(f"stored {path.name} from=<{self.mail_from}> rcpts={len(self.rcpts)}")
            await self.reply(f"250 2.0.0 ok stored as {path.name}")
        self.reset()

    async def _read_data(self) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionResetError("client went away in DATA")
            if line in (b".\r\n", b".\n"):
                return None if size > MAX_MESSAGE else b"".join(chunks)
            if line.startswith(b"."):
                line = line[1:]  # dot-unstuffing
            size += len(line)
            if size <= MAX_MESSAGE:
                chunks.append(line)


class _Cancelled(Exception):
    pass


def _b64(text: str) -> str:
    return base64.b64decode(text, validate=True).decode("utf-8")


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("<"):
        return text[1 : text.find(">")] if ">" in text else text[1:]
    return text.split(" ", 1)[0]


class SinkServer:
    """Asyncio server; use `serve_forever` in a process or `SinkThread` in tests."""

    def __init__(self, cfg: SinkConfig) -> None:
        self.cfg = cfg
        self.tls = cfg.tls_context()
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, limit=MAX_LINE)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self.cfg, self.tls, reader, writer)
        try:
            await session.run()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            _log(f"session ended: {type(exc).__name__}")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

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
    ap = argparse.ArgumentParser(prog="python3 -m relaykit.verify.sink", description=__doc__)
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 2525))
    ap.add_argument("--maildir", type=Path, required=True)
    ap.add_argument("--require-auth", metavar="USER:PASSWORD_FILE")
    ap.add_argument("--tls-cert", type=Path)
    ap.add_argument("--tls-key", type=Path)
    ap.add_argument("--hostname", default="sink.relaykit.test")
    args = ap.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        ap.error("--tls-cert and --tls-key go together")
    creds = read_credentials(args.require_auth) if args.require_auth else None
    cfg = SinkConfig(args.maildir, creds, args.tls_cert, args.tls_key, args.hostname)
    host, port = args.listen
    asyncio.run(serve(cfg, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
