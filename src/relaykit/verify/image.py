"""`invoke verify --format oci`: boot the image in a Docker engine and prove it.

The container gets its own network namespace (--network none).  A sink listens on
the container's loopback (the relayhost points there), and the conformance suite runs
from a separate client namespace joined by a veth pair on TEST-NET-2 addresses: a
client outside mynetworks, with no route anywhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
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
from relaykit.verify.model import CheckResult, listener_to_json, pem_sha256
from relaykit.verify.suite import format_table, run_suite_via

SINK_PORT = 2525  # relayhost for relays: plain sink on the container's loopback
SMARTHOST_PORT = 2587  # for satellites: a sink that demands STARTTLS + AUTH
SMARTHOST_NAME = "smarthost.relaykit.test"  # RFC 2606 .test: resolved by /etc/hosts only


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
    started: float = 0.0  # time.monotonic() just before `docker run`
    mode: str = "container"  # the row label: how it was started
    # Time budgets are multiplied by this: a foreign-architecture image runs under qemu
    # (user-mode emulation is an order of magnitude slower); 1 for a native image.
    slowdown: float = 1.0

    def budget(self, seconds: float) -> float:
        return seconds * self.slowdown

    @property
    def nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n"]

    def logs(self) -> str:
        return bytes(self.container.logs()).decode(errors="replace")


# What Postfix and saslauthd need, measured by dropping each in turn (README, "Least
# privilege"): chown/chmod of the queue and runtime files, root reaching the postfix-
# owned queue, the daemons' setuid/setgid and chroot.  NET_BIND_SERVICE: ports below
# 1024 where the runtime does not lower ip_unprivileged_port_start as Docker does.
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SYS_CHROOT",
                "NET_BIND_SERVICE")
# --read-only needs a writable /run (the entrypoint's /run/relaykit) and the queue.
READ_ONLY_TMPFS = ("/run",)
SPOOL = "/var/spool/postfix"
HEALTHY_WITHIN = 10.0  # seconds from `docker run` to healthy, with the image's own check


@contextlib.contextmanager
def run_container(client: Any, image: str, work: Path, env: dict[str, str], *,
                  hardened: bool = False, spool: str | None = None,
                  hosts: dict[str, str] | None = None) -> Iterator[Running]:
    """Start the image with the secrets in work/secrets.  hardened: --cap-drop ALL plus
    CAPABILITIES, --read-only with READ_ONLY_TMPFS.  spool: a volume name or host path
    for the queue (default: the container's own layer; a tmpfs when hardened)."""
    secrets_dir = work / "secrets"
    resolv = work / "resolv.conf"
    # Never the host's resolver (a private address): nothing resolves, nothing leaks.
    resolv.write_text("nameserver 127.0.0.1\n")
    volumes = {str(secrets_dir): {"bind": "/run/secrets", "mode": "ro"},
               str(resolv): {"bind": "/etc/resolv.conf", "mode": "ro"}}
    options: dict[str, Any] = {}
    if spool is not None:
        volumes[spool] = {"bind": SPOOL, "mode": "rw"}
    if hardened:
        tmpfs = dict.fromkeys(READ_ONLY_TMPFS, "")
        if spool is None:
            tmpfs[SPOOL] = ""
        options = {"cap_drop": ["ALL"], "cap_add": list(CAPABILITIES), "read_only": True,
                   "tmpfs": tmpfs}
    slowdown = _slowdown(client, image)
    if slowdown != 1.0:
        options["healthcheck"] = _slowed_healthcheck(client, image, slowdown)
    started = time.monotonic()
    container = client.containers.run(
        image, detach=True, network_mode="none", environment=env, volumes=volumes,
        labels={"relaykit.verify": "1"}, extra_hosts=hosts or {}, **options)
    try:
        container.reload()
        yield Running(container, int(container.attrs["State"]["Pid"]), secrets_dir, work,
                      started, "hardened" if hardened else "container", slowdown)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


EMULATION_SLOWDOWN = 8.0  # measured: the arm64 relay under qemu-user on 2 busy cores


def _slowdown(client: Any, image: str) -> float:
    """EMULATION_SLOWDOWN when the image's architecture is not the host's."""
    from relaykit.buildinfo import host_architecture

    arch = client.images.get(image).attrs.get("Architecture")
    return 1.0 if arch in (None, host_architecture()) else EMULATION_SLOWDOWN


def _slowed_healthcheck(client: Any, image: str, slowdown: float) -> dict[str, Any]:
    """The image's own healthcheck with its timeout and start period stretched: under
    emulation the same check is as right but slower (its interval and retries stay)."""
    check = dict(client.images.get(image).attrs["Config"]["Healthcheck"])
    for key in ("Timeout", "StartPeriod"):
        check[key] = int(check[key] * slowdown)
    return {"test": check["Test"], "interval": check["Interval"], "timeout": check["Timeout"],
            "start_period": check["StartPeriod"], "retries": check["Retries"]}


def wait_ready(r: Running, ports: list[int], timeout: float = 60.0) -> float:
    """Wait until every port accepts connections; seconds since `docker run`."""
    deadline = time.monotonic() + r.budget(timeout)
    while time.monotonic() < deadline:
        r.container.reload()
        if r.container.status != "running":
            raise RelaykitError("the relay container exited during start:\n" + r.logs()[-3000:])
        if all(testbed.connects(r.nsenter, "127.0.0.1", port) for port in ports):
            return time.monotonic() - r.started
        time.sleep(0.2)
    raise RelaykitError("the relay did not open its ports in time:\n" + r.logs()[-3000:])


# Polls one listener from inside the container's namespace until it says 220; prints
# the wall-clock time of that banner (TLS first on an implicit-TLS port).
FIRST_BANNER = """\
import socket, ssl, sys, time
port, implicit = int(sys.argv[1]), sys.argv[2] == "implicit"
deadline = time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", port), 2)
        if implicit:
            s = ssl._create_unverified_context().wrap_socket(s)
        if s.recv(512).startswith(b"220"):
            print(time.time())
            s.sendall(b"QUIT\\r\\n")
            break
    except OSError:
        pass
    time.sleep(0.05)
"""


def check_listening(r: Running, p: Profile) -> CheckResult:
    """Every listener accepts; the first 220 banner, timed from `docker run`."""
    ports = [lis.port for lis in p.listeners]
    wall_start = time.time() - (time.monotonic() - r.started)
    first = p.listeners[0]
    proc = subprocess.Popen([*r.nsenter, sys.executable, "-c", FIRST_BANNER, str(first.port),
                             first.tls, str(r.budget(60))], stdout=subprocess.PIPE, text=True)
    took = wait_ready(r, ports)
    out = proc.communicate(timeout=r.budget(90))[0].strip()
    if not out:
        return CheckResult("listeners open", r.mode, False,
                           f"no 220 from port {first.port} within {r.budget(60):.0f} s")
    banner = float(out) - wall_start
    return CheckResult("listeners open", r.mode, True,
                       f"first 220 (port {first.port}) after {banner:.1f} s; ports "
                       f"{' '.join(map(str, ports))} accept after {took:.1f} s")


def check_healthy(r: Running, within: float = HEALTHY_WITHIN) -> CheckResult:
    """The image's own healthcheck (interval, start period as built) turns healthy
    within `within` seconds of `docker run` (times the emulation slowdown)."""
    within = r.budget(within)
    deadline = r.started + max(within, r.budget(60.0))
    status = "none"
    while time.monotonic() < deadline:
        r.container.reload()
        status = r.container.attrs["State"].get("Health", {}).get("Status", "none")
        if status in ("healthy", "none", "unhealthy"):
            break
        time.sleep(0.2)
    took = time.monotonic() - r.started
    ok = status == "healthy" and took <= within
    return CheckResult("healthy in time", r.mode, ok,
                       f"{status} after {took:.1f} s (want healthy within {within:.0f} s)")


def check_no_secret_in_logs(r: Running, secret_values: list[str]) -> CheckResult:
    logs = r.logs()
    leaked = [i for i, s in enumerate(secret_values) if s and s in logs]
    return CheckResult("no secret in logs", r.mode, not leaked,
                       "clean" if not leaked else f"{len(leaked)} secret(s) found in logs")


def check_clean_stop(r: Running) -> CheckResult:
    start = time.monotonic()
    r.container.stop(timeout=30)
    r.container.reload()
    code = r.container.attrs["State"]["ExitCode"]
    took = time.monotonic() - start
    return CheckResult("SIGTERM stops cleanly", r.mode, code == 0 and took < 25,
                       f"exit {code} after {took:.1f} s")


# --- secrets, as a Kubernetes secret volume presents them ------------------------------

class SecretVolume:
    """A directory laid out like a Kubernetes secret volume: each NAME is a link to
    ..data/NAME, ..data a link to a timestamped directory; an update writes a new
    directory and swaps ..data in one rename, as the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0

    def write(self, files: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.version += 1
        new = self.root / f"..rk_{self.version:04d}"
        new.mkdir()
        for name, text in files.items():
            testbed.write_secret(new / name, text)
            (new / name).chmod(0o644)  # the kubelet's default mode
        tmp = self.root / "..data_tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(new.name)
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        tmp.rename(self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for link in self.root.iterdir():  # keys no longer in the secret
            if not link.name.startswith("..") and link.name not in files:
                link.unlink()
        if old is not None and old != new:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()


def _relay_secrets(p: Profile, work: Path, users: str) -> dict[str, str]:
    """sasl-users and a TLS pair made here; returns the secret files."""
    gen = work / "tls-made"
    gen.mkdir(parents=True, exist_ok=True)
    cert, key, _ = testbed.self_signed(gen, p.postfix.myhostname)
    return {"sasl-users": users, "tls.crt": cert.read_text(), "tls.key": key.read_text()}


def _users_line(p: Profile, user: str, password: str) -> str:
    realm = p.sasl.realm if p.sasl else p.postfix.mydomain
    return f"{user}@{realm}:{password}\n"


# --- client addresses --------------------------------------------------------------------

def add_client_addresses(link: netns.Link, hosts: range) -> tuple[str, ...]:
    """More TEST-NET-2 addresses on the client's veth: anvil counts per address."""
    out = subprocess.run(["ip", "-n", link.namespace, "-o", "link", "show", "type", "veth"],
                         capture_output=True, text=True, check=True).stdout
    dev = out.split(":")[1].strip().split("@")[0]
    addresses = tuple(f"{netns.TEST_NET}.{h}" for h in hosts)
    for a in addresses:
        subprocess.run(["ip", "-n", link.namespace, "addr", "add", f"{a}/24", "dev", dev],
                       capture_output=True, check=True)
    return addresses


def _headers(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]


def check_received_header(p: Profile, maildir: Path, client: str) -> CheckResult:
    """Mail relayed after AUTH names the client's address in Received: unless the
    profile hides it (abuse.hide_client_ip)."""
    hide = p.abuse.hide_client_ip
    mails = sorted(maildir.glob("*.eml"))
    if not mails:
        return CheckResult("client address in Received:", "sink", False, "no mail in the sink")
    seen = [m.name for m in mails if client.encode() in _headers(m.read_bytes())]
    ok = not seen if hide else len(seen) == len(mails)
    want = "absent (hide_client_ip)" if hide else "present"
    return CheckResult("client address in Received:", "sink", ok,
                       f"{client} in the headers of {len(seen)} of {len(mails)} mail(s); "
                       f"want {want}")


# --- live credentials ------------------------------------------------------------------

RELOAD_WITHIN = 5.0  # seconds: RELAYKIT_RELOAD_INTERVAL (2 s default) + the reload

LOGIN = """\
import json, sys
from relaykit.verify import smtp
from relaykit.verify.model import Expectations, listener_from_json
a = json.load(sys.stdin)
lst = listener_from_json(a["listener"])
exp = Expectations(listeners=(lst,), user=a["user"], password=a["password"],
                   server_name=a["server_name"], timeout=10)
with smtp.open_session(lst, exp, secure=True) as s:
    mech = smtp.preferred_mechanism(s.mechanisms)
    print(smtp.authenticate(s, lst, exp, mech, a["password"])[0] if mech else 0)
"""


def login_code(r: Running, p: Profile, user: str, password: str) -> int:
    """One AUTH from the container's own loopback (in mynetworks: no anvil limit);
    the password goes on stdin."""
    lis = p.auth_listeners[0]
    wire = conformance.wire_listener(p, lis, "127.0.0.1")
    spec = {"listener": listener_to_json(wire), "user": user, "password": password,
            "server_name": p.postfix.myhostname}
    env = {**os.environ, "PYTHONPATH": testbed.package_root()}
    proc = subprocess.run([*r.nsenter, sys.executable, "-c", LOGIN], input=json.dumps(spec),
                          capture_output=True, text=True, env=env, timeout=60)
    try:
        return int(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return -1


def check_rotation(r: Running, p: Profile, volume: SecretVolume, files: dict[str, str],
                   old: tuple[str, str], new: tuple[str, str]) -> CheckResult:
    """Swap the secret volume to a users file without the old user and with a new one:
    within RELOAD_WITHIN seconds the new user gets 235 and the old one 535."""
    rotated = {k: v for k, v in files.items() if k != "sender-logins"}  # granted to old
    volume.write({**rotated, "sasl-users": _users_line(p, *new)})
    start = time.monotonic()
    codes = (0, 0)
    within = r.budget(RELOAD_WITHIN)
    while time.monotonic() - start < within + r.budget(10):
        codes = (login_code(r, p, *new), login_code(r, p, *old))
        if codes == (235, 535):
            took = time.monotonic() - start
            return CheckResult("credentials rotated live", r.mode, took <= within,
                               f"new user 235, removed user 535 after {took:.1f} s "
                               f"(want within {within:.0f} s; Kubernetes-style "
                               "..data swap)")
        time.sleep(0.3)
    return CheckResult("credentials rotated live", r.mode, False,
                       f"after {time.monotonic() - start:.0f} s: new user {codes[0]}, "
                       f"removed user {codes[1]} (want 235 and 535)")


# --- profiles --------------------------------------------------------------------------

def verify_relay(p: Profile, client: Any, image: str, work: Path, log: Log
                 ) -> list[CheckResult]:
    """The conformance suite against a hardened container (--cap-drop ALL + the listed
    capabilities, --read-only), credentials rotated live, then a plain `docker run`."""
    password, new_password = testbed.new_password(), testbed.new_password()
    volume = SecretVolume(work / "secrets")
    files = _relay_secrets(p, work, _users_line(p, testbed.TEST_USER, password))
    # The documented grant: one more address for the test user (a local one).
    granted = f"{testbed.TEST_USER}-alias@{p.postfix.myhostname}"
    files["sender-logins"] = f"{granted} {conformance.own_address(p, testbed.TEST_USER)}\n"
    volume.write(files)
    sha = pem_sha256(files["tls.crt"])
    env = {"RELAYKIT_RELAYHOST": f"[127.0.0.1]:{SINK_PORT}"}
    with run_container(client, image, work, env, hardened=True) as r:
        results = [check_listening(r, p), check_healthy(r)]
        with testbed.sink(r.nsenter, work / "sink", f"127.0.0.1:{SINK_PORT}") as maildir, \
                netns.client_link(r.pid) as link:
            extra = add_client_addresses(link, range(10, 14))
            throttle = add_client_addresses(link, range(20, 21))[0]
            exp = conformance.expectations(
                p, host=link.server_address, user=f"{testbed.TEST_USER}", password=password,
                sink_dir=maildir, cert_sha256=sha, source_address=link.client_address,
                extra_sources=extra, throttle_source=throttle, granted_sender=granted)
            log(f"running the conformance suite from {link.client_address} "
                f"against {link.server_address}")
            results += run_suite_via(exp, link.runner)
            if p.auth_listeners:
                results.append(check_received_header(p, maildir, link.client_address))
        if p.auth_listeners:
            results.append(check_rotation(r, p, volume, files,
                                          (testbed.TEST_USER, password),
                                          ("rk-rotated", new_password)))
        results.append(check_no_secret_in_logs(r, [password, new_password]))
        results.append(check_clean_stop(r))
    with run_container(client, image, work, env) as r:
        results += [check_listening(r, p), check_healthy(r), check_clean_stop(r)]
    return results


def verify_satellite(p: Profile, client: Any, image: str, work: Path, log: Log
                     ) -> list[CheckResult]:
    """Mail submitted locally without credentials must reach a smarthost that demands
    STARTTLS and AUTH: the satellite authenticates on the sender's behalf, after
    verifying the smarthost's certificate against the CA it was given; a smarthost
    with another certificate gets the mail deferred and never the credentials."""
    secrets_dir = work / "secrets"
    secrets_dir.mkdir(parents=True)
    smart_user, smart_pw = "satellite", testbed.new_password()
    # A name, as a real smarthost has (Postfix matches the certificate against it),
    # resolved through the container's /etc/hosts.
    relayhost = f"[{SMARTHOST_NAME}]:{SMARTHOST_PORT}"
    testbed.write_secret(secrets_dir / "sasl-passwd", f"{relayhost} {smart_user}:{smart_pw}\n")
    (secrets_dir / "sasl-passwd").chmod(0o644)
    pw_file = work / "smarthost.pw"
    testbed.write_secret(pw_file, smart_pw)
    ca, leaf, key = testbed.issue_test_ca(work / "ca", SMARTHOST_NAME)
    (secrets_dir / "smarthost-ca.crt").write_text(ca.read_text())
    impostor = testbed.self_signed(work, SMARTHOST_NAME, "impostor")[:2]
    with run_container(client, image, work, {"RELAYKIT_RELAYHOST": relayhost},
                       hardened=True, hosts={SMARTHOST_NAME: "127.0.0.1"}) as r, \
            nxdomain_resolver(r):
        results = [check_listening(r, p), check_healthy(r)]
        with testbed.sink(r.nsenter, work / "smarthost", f"127.0.0.1:{SMARTHOST_PORT}",
                          auth_file=pw_file, user=smart_user, tls=(leaf, key)) as maildir:
            results.append(testbed.submit_and_expect(r.nsenter, 25, maildir, p))
        results.append(check_impostor_smarthost(r, p, work, pw_file, smart_user, impostor))
        with netns.client_link(r.pid) as link:
            results += [check_unreachable(link, lis.port) for lis in p.listeners]
        results.append(check_no_secret_in_logs(r, [smart_pw]))
        results.append(check_clean_stop(r))
    return results


# A resolver that knows no name (NXDOMAIN to every query), on the container's loopback
# where its resolv.conf points: Postfix then finds the smarthost in /etc/hosts.
NXDOMAIN_RESOLVER = """\
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
while True:
    q, peer = s.recvfrom(512)
    if len(q) >= 12:
        # same id and question, QR=1 RD RA, RCODE=3, no answers
        s.sendto(q[:2] + bytes([0x81 | (q[2] & 0x01), 0x83]) + q[4:6] + bytes(6) + q[12:], peer)
"""


@contextlib.contextmanager
def nxdomain_resolver(r: Running) -> Iterator[None]:
    proc = subprocess.Popen([*r.nsenter, sys.executable, "-c", NXDOMAIN_RESOLVER],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        testbed.stop_process(proc)


def check_impostor_smarthost(r: Running, p: Profile, work: Path, pw_file: Path, user: str,
                             tls: tuple[Path, Path]) -> CheckResult:
    """The smarthost's address answered by a server whose certificate the CA did not
    issue: the mail stays in the queue and the server never sees AUTH."""
    name = "smarthost certificate verified"
    with testbed.sink(r.nsenter, work / "impostor", f"127.0.0.1:{SMARTHOST_PORT}",
                      auth_file=pw_file, user=user, tls=tls) as maildir:
        sent = testbed.submit_and_expect(r.nsenter, 25, maildir, p, timeout=8.0)
        sink_log = (maildir.parent / f"sink-{maildir.name}.log").read_text(errors="replace")
    logs = r.logs()
    refused = "certificate verification failed" in logs or "not verified" in logs
    auth_seen = "auth ok" in sink_log or "auth failed" in sink_log
    ok = not sent.ok and refused and not auth_seen
    detail = ("impostor: mail deferred, certificate refused, no AUTH sent" if ok else
              f"impostor: delivered={sent.ok} certificate refused={refused} "
              f"AUTH seen by impostor={auth_seen}")
    return CheckResult(name, r.mode, ok, detail)


def check_unreachable(link: netns.Link, port: int) -> CheckResult:
    """A loopback-only listener must not answer a client on the network."""
    answered = testbed.connects(link.runner, link.server_address, port, timeout=3.0)
    return CheckResult("closed to the network", f"port {port}", not answered,
                       f"{link.server_address}:{port} "
                       + ("ANSWERED" if answered else "refused"))


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
