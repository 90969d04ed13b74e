"""Throwaway secrets and sinks for verifying a relay: made fresh for each run,
never reused, never printed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.verify.model import pem_sha256

TEST_USER = "rk-tester"


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def new_password() -> str:
    return "rk-" + secrets.token_urlsafe(18)


def self_signed(directory: Path, cn: str, stem: str = "tls") -> tuple[Path, Path, str]:
    """(cert, key, sha256 of the DER cert) made with openssl, as an admin would."""
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-days",
                    "2", "-nodes", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o644)  # read by the container's root through a read-only bind mount
    return cert, key, pem_sha256(cert.read_text())


def package_root() -> str:
    return str(Path(__file__).resolve().parents[1])


@contextmanager
def sink(runner: Sequence[str], maildir: Path, listen: str, *,
         auth_file: Path | None = None, user: str = "",
         tls: tuple[Path, Path] | None = None) -> Iterator[Path]:
    """relaykit.verify.sink running under `runner` (e.g. nsenter into a container)."""
    maildir.mkdir(parents=True, exist_ok=True)
    argv = [*runner, sys.executable, "-m", "relaykit.verify.sink", "--listen", listen,
            "--maildir", str(maildir)]
    if auth_file is not None:
        argv += ["--require-auth", f"{user}:{auth_file}"]
    if tls is not None:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    env = {**os.environ, "PYTHONPATH": package_root()}
    log = (maildir.parent / f"sink-{maildir.name}.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(runner, listen, proc)
        yield maildir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


CONNECT = ("import socket,sys; s=socket.socket(); s.settimeout(float(sys.argv[3]));"
           "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))")


def connects(runner: Sequence[str], host: str, port: int, timeout: float = 1.0) -> bool:
    """Does a TCP connection to host:port succeed, run under `runner` (a namespace)?"""
    argv = [*runner, sys.executable, "-c", CONNECT, host, str(port), str(timeout)]
    return subprocess.run(argv, capture_output=True, timeout=timeout + 30).returncode == 0


def _wait_listening(runner: Sequence[str], listen: str, proc: subprocess.Popen[bytes]) -> None:
    host, port = listen.rsplit(":", 1)
    for _ in range(50):
        if proc.poll() is not None:
            raise RelaykitError(f"test sink on {listen} exited ({proc.returncode})")
        if connects(runner, host, int(port)):
            return
        time.sleep(0.1)
    raise RelaykitError(f"test sink on {listen} did not start")
