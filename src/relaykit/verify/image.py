"""`invoke verify --format oci`: boot the image in a Docker engine and prove it.

The container gets its own network namespace (--network none).  A sink listens on
the container's loopback (the relayhost points there), and the conformance suite runs
from a separate client namespace joined by a veth pair on TEST-NET-2 addresses: a
client outside mynetworks, with no route anywhere else.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaykit.errors import RelaykitError
from relaykit.profile.model import Profile
from relaykit.ui import Log
from relaykit.verify import expect as conformance
from relaykit.verify.harness import netns, testbed
from relaykit.verify.model import CheckResult
from relaykit.verify.suite import format_table, run_suite_via

SINK_PORT = 2525  # relayhost for relays: plain sink on the container's loopback
SMARTHOST_PORT = 2587  # for satellites: a sink that demands STARTTLS + AUTH


def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types here
        raise RelaykitError(f"no Docker engine reachable: {exc}",
                            hint="start one: dockerd --bridge=none --iptables=false &") from None
    return client


def load_image(client: Any, archive: Path) -> str:
    with archive.open("rb") as f:  # streamed: the SDK posts the file object as it reads
        images = client.images.load(f)
    return str(images[0].id)


@dataclass
class Running:
    container: Any
    pid: int
    secrets_dir: Path
    work: Path

    @property
    def nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n"]

    def logs(self) -> str:
        return bytes(self.container.logs()).decode(errors="replace")


def _health_test(client: Any, image: str) -> list[str]:
    config = client.images.get(image).attrs["Config"]
    return list(config.get("Healthcheck", {}).get("Test") or [])


@contextlib.contextmanager
def run_container(client: Any, image: str, work: Path, env: dict[str, str]
                  ) -> Iterator[Running]:
    secrets_dir = work / "secrets"
    resolv = work / "resolv.conf"
    # Never the host's resolver (a private address): nothing resolves, nothing leaks.
    resolv.write_text("nameserver 127.0.0.1\n")
    health = _health_test(client, image)
    container = client.containers.run(
        image, detach=True, network_mode="none", environment=env,
        volumes={str(secrets_dir): {"bind": "/run/secrets", "mode": "ro"},
                 str(resolv): {"bind": "/etc/resolv.conf", "mode": "ro"}},
        # The image's own test, polled faster than its 30 s so verify is quick.
        healthcheck={"test": health, "interval": 2_000_000_000, "timeout": 10_000_000_000,
                     "retries": 3, "start_period": 0} if health else None,
        labels={"relaykit.verify": "1"})
    try:
        container.reload()
        yield Running(container, int(container.attrs["State"]["Pid"]), secrets_dir, work)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def wait_ready(r: Running, ports: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r.container.reload()
        if r.container.status != "running":
            raise RelaykitError("the relay container exited during start:\n" + r.logs()[-3000:])
        if all(testbed.connects(r.nsenter, "127.0.0.1", port) for port in ports):
            return
        time.sleep(0.5)
    raise RelaykitError("the relay did not open its ports in time:\n" + r.logs()[-3000:])


def check_healthy(r: Running, timeout: float = 60.0) -> CheckResult:
    deadline = time.monotonic() + timeout
    status = "none"
    while time.monotonic() < deadline:
        r.container.reload()
        status = r.container.attrs["State"].get("Health", {}).get("Status", "none")
        if status in ("healthy", "none"):
            break
        time.sleep(1)
    return CheckResult("healthcheck", "container", status == "healthy", f"status {status}")


def check_no_secret_in_logs(r: Running, secret_values: list[str]) -> CheckResult:
    logs = r.logs()
    leaked = [i for i, s in enumerate(secret_values) if s and s in logs]
    return CheckResult("no secret in logs", "container", not leaked,
                       "clean" if not leaked else f"{len(leaked)} secret(s) found in logs")


def check_clean_stop(r: Running) -> CheckResult:
    start = time.monotonic()
    r.container.stop(timeout=30)
    r.container.reload()
    code = r.container.attrs["State"]["ExitCode"]
    took = time.monotonic() - start
    return CheckResult("SIGTERM stops cleanly", "container", code == 0 and took < 25,
                       f"exit {code} after {took:.1f} s")


# --- profiles --------------------------------------------------------------------------

def _relay_secrets(p: Profile, r_dir: Path, password: str) -> str:
    """Users and a TLS pair in the secrets dir; returns the cert's SHA-256."""
    r_dir.mkdir(parents=True, exist_ok=True)
    realm = p.sasl.realm if p.sasl else p.postfix.mydomain
    testbed.write_secret(r_dir / "sasl-users", f"# test users\n{testbed.TEST_USER}@{realm}:"
                         f"{password}\n")
    _, _, sha = testbed.self_signed(r_dir, p.postfix.myhostname)
    (r_dir / "sasl-users").chmod(0o644)
    return sha


def verify_relay(p: Profile, client: Any, image: str, work: Path, log: Log
                 ) -> list[CheckResult]:
    password = testbed.new_password()
    sha = _relay_secrets(p, work / "secrets", password)
    env = {"RELAYKIT_RELAYHOST": f"[127.0.0.1]:{SINK_PORT}"}
    with run_container(client, image, work, env) as r:
        wait_ready(r, [lis.port for lis in p.listeners])
        results = [check_healthy(r)]
        with testbed.sink(r.nsenter, work / "sink", f"127.0.0.1:{SINK_PORT}") as maildir, \
                netns.client_link(r.pid) as link:
            exp = conformance.expectations(
                p, host=link.server_address, user=f"{testbed.TEST_USER}", password=password,
                sink_dir=maildir, cert_sha256=sha, source_address=link.client_address)
            log(f"running the conformance suite from {link.client_address} "
                f"against {link.server_address}")
            results += run_suite_via(exp, link.runner)
        results.append(check_no_secret_in_logs(r, [password]))
        results.append(check_clean_stop(r))
    return results


def verify_satellite(p: Profile, client: Any, image: str, work: Path, log: Log
                     ) -> list[CheckResult]:
    """Mail submitted locally without credentials must reach a smarthost that demands
    STARTTLS and AUTH: the satellite authenticates on the sender's behalf."""
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(parents=True)
    smart_user, smart_pw = "satellite", testbed.new_password()
    relayhost = f"[127.0.0.1]:{SMARTHOST_PORT}"
    testbed.write_secret(secrets_dir / "sasl-passwd", f"{relayhost} {smart_user}:{smart_pw}\n")
    (secrets_dir / "sasl-passwd").chmod(0o644)
    pw_file = work / "smarthost.pw"
    testbed.write_secret(pw_file, smart_pw)
    tls = testbed.self_signed(work, "smarthost.example", "smarthost")[:2]
    with run_container(client, image, work, {"RELAYKIT_RELAYHOST": relayhost}) as r:
        wait_ready(r, [lis.port for lis in p.listeners])
        results = [check_healthy(r)]
        with testbed.sink(r.nsenter, work / "smarthost", f"127.0.0.1:{SMARTHOST_PORT}",
                          auth_file=pw_file, user=smart_user, tls=tls) as maildir:
            results.append(submit_and_expect(r.nsenter, 25, maildir, p))
        with netns.client_link(r.pid) as link:
            results += [check_unreachable(link, lis.port) for lis in p.listeners]
        results.append(check_no_secret_in_logs(r, [smart_pw]))
        results.append(check_clean_stop(r))
    return results


def check_unreachable(link: netns.Link, port: int) -> CheckResult:
    """A loopback-only listener must not answer a client on the network."""
    answered = testbed.connects(link.runner, link.server_address, port, timeout=3.0)
    return CheckResult("closed to the network", f"port {port}", not answered,
                       f"{link.server_address}:{port} "
                       + ("ANSWERED" if answered else "refused"))


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
    token = testbed.new_password().replace("-", "x")
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


def verify_image(p: Profile, archive: Path, log: Log = print) -> tuple[bool, str]:
    """Load, boot, probe; returns (all passed, the result table)."""
    client = docker_client()
    log(f"loading {archive}")
    image = load_image(client, archive)
    with tempfile.TemporaryDirectory(prefix="relaykit-verify-") as tmp:
        work = Path(tmp)
        if p.sasl is None and p.outbound.sasl:
            results = verify_satellite(p, client, image, work, log)
        else:
            results = verify_relay(p, client, image, work, log)
    table = format_table(results)
    return all(r.ok for r in results), table
