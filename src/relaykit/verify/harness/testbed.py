"""Throwaway secrets and sinks for verifying a relay: made fresh for each run,
never reused, never printed."""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.profile.model import Profile
from relaykit.verify.model import CheckResult, pem_sha256

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
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds: the exit status, None when killed."""
    proc.terminate()
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


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


# --- shared by the image and package verifiers -------------------------------------

def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue_test_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """(CA certificate, leaf certificate, leaf key): a throwaway CA and a server
    certificate it issued for `name` (an IP address gets an IP SAN: OpenSSL checks
    that for an IP-literal next hop)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    leaf, key, csr = directory / "leaf.crt", directory / "leaf.key", directory / "leaf.csr"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=relaykit test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", "-keyout", str(ca_key), "-out",
             str(ca))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
             str(key), "-out", str(csr))
    ext = directory / "leaf.ext"
    # Postfix compares the name as text (DNS SAN), OpenSSL the address (IP SAN).
    san = f"DNS:{name},IP:{name}" if _is_ip(name) else f"DNS:{name}"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(leaf))
    key.chmod(0o644)
    return ca, leaf, key


SUBMIT = """\
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage(); m["From"] = sys.argv[2]; m["To"] = "someone@foreign.example"
m["Subject"] = "relaykit " + sys.argv[3]; m["Message-ID"] = "<" + sys.argv[3] + "@relaykit>"
m.set_content("token " + sys.argv[3])
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.send_message(m)
"""


def submit_and_expect(runner: list[str], port: int, maildir: Path, p: Profile,
                      timeout: float = 60.0) -> CheckResult:
    token = new_password().replace("-", "x")
    sender = f"app@{p.postfix.myhostname}"
    proc = subprocess.run([*runner, "python3", "-c", SUBMIT, str(port), sender, token],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return CheckResult("local mail reaches the smarthost", "smtp", False,
                           f"submission failed: {tail}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in maildir.glob("*"):
            if token in path.read_text(errors="replace"):
                return CheckResult("local mail reaches the smarthost", "smtp", True,
                                   "arrived after STARTTLS + AUTH")
        time.sleep(0.5)
    return CheckResult("local mail reaches the smarthost", "smtp", False,
                       f"not in the smarthost's sink after {timeout:.0f} s")
