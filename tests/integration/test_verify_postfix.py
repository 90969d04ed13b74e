"""The verify suite against a REAL Postfix 3.x + Cyrus SASL, in network namespaces.

Set-up, chosen to be the simplest robust one on Debian 12 (no /etc/postfix/main.cf):
- Postfix runs as an extra instance from a temp config dir: `postfix -c DIR start-fg`
  (root may use any config dir with start-fg; no alternate_config_directories needed),
  every service `chroot n`, log to stdout (no syslog here), inside netns SRV.
- The client runs in netns CLI, linked by a veth pair: server 198.51.100.1, client
  198.51.100.2 (TEST-NET-2), no default route. mynetworks = 127.0.0.0/8 only, so the
  client is untrusted and relay tests mean something.
- relayhost = [127.0.0.1]:2525 = relaykit.verify.sink inside SRV, over mandatory TLS
  with SASL PLAIN (the satellite path); /etc/netns/SRV/resolv.conf says 127.0.0.1.
- PLAIN/LOGIN through saslauthd -a sasldb; saslauthd only reads /etc/sasldb2, so it runs
  in a private mount namespace with our temp sasldb bind-mounted there (the real file
  is untouched). CRAM-MD5/DIGEST-MD5 through auxprop sasldb on a second smtpd service
  with `smtpd_sasl_path = smtpd-aux` (Cyrus reads smtpd-aux.conf).
- Measured: Debian 12's smtpd looked for `$config_directory/sasl/<name>.conf` even with
  cyrus_sasl_config_path pointing elsewhere, so the SASL files live in CONF/sasl and
  cyrus_sasl_config_path says the same.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from relaykit.verify.harness.netns import name_prefix
from relaykit.verify.harness.testbed import stop_process
from relaykit.verify.model import CheckResult, Expectations, Listener, pem_sha256
from relaykit.verify.suite import format_table, run_suite_via

pytestmark = pytest.mark.integration

SRV_IP, CLI_IP = "198.51.100.1", "198.51.100.2"
USER, PASSWORD, DOMAIN = "alice", "Rk-t3st-Passw0rd", "relay.example"
SINK_USER, SINK_PASSWORD = "relay-up", "Sink-Upstream-pw9"
PLAIN_MECHS = frozenset({"PLAIN", "LOGIN"})
HASH_MECHS = frozenset({"CRAM-MD5", "DIGEST-MD5"})
SRC_ROOT = str(Path(__file__).resolve().parents[2] / "src")


def _missing() -> str | None:  # a skip, which fails the run under CI=true
    if os.geteuid() != 0:
        return "needs root (network namespaces, Postfix instance)"
    for tool in ("postfix", "saslauthd", "saslpasswd2", "openssl", "ip", "unshare", "postmap"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not Path("/etc/sasldb2").exists():
        return "/etc/sasldb2 missing: needed as bind-mount target for saslauthd"
    return None


def run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, input=stdin)


@dataclass
class Relay:
    base: Path
    srv: str
    cli: str
    pin: str
    procs: list[subprocess.Popen[bytes]]

    def expectations(self) -> Expectations:
        def lst(name: str, port: int, tls: str, mechs: frozenset[str], before: bool = False
                ) -> Listener:
            return Listener(name, SRV_IP, port, tls, True, mechs, before)  # type: ignore[arg-type]
        return Expectations(
            listeners=(
                lst("smtp", 25, "starttls", PLAIN_MECHS),
                lst("submission", 2587, "starttls-required", PLAIN_MECHS),
                lst("smtps", 2465, "implicit", PLAIN_MECHS),
                lst("hashed", 2526, "starttls", HASH_MECHS, before=True),
            ),
            user=USER, password=PASSWORD, local_sender_domain=DOMAIN, relay_domain=DOMAIN,
            foreign_domain="foreign.example", sink_dir=self.base / "sink", sink_timeout=30,
            cert_sha256=self.pin, server_name=DOMAIN, source_address=CLI_IP, timeout=10,
        )


def make_netns(stack: contextlib.ExitStack, srv: str, cli: str) -> None:
    # Deleting a namespace deletes the veth end in it, and with it the peer.
    for ns in (srv, cli):
        stack.callback(subprocess.run, ["ip", "netns", "delete", ns], capture_output=True)
    stack.callback(shutil.rmtree, f"/etc/netns/{srv}", ignore_errors=True)
    run("ip", "netns", "add", srv)
    run("ip", "netns", "add", cli)
    a, b = f"{srv}v", f"{cli}v"  # 8 + 1 + 4 + 1 + 1 bytes: within IFNAMSIZ
    run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    run("ip", "link", "set", a, "netns", srv)
    run("ip", "link", "set", b, "netns", cli)
    for ns, dev, ip in ((srv, a, SRV_IP), (cli, b, CLI_IP)):
        run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
    # `ip netns exec` bind-mounts this over /etc/resolv.conf: no resolver but loopback.
    Path(f"/etc/netns/{srv}").mkdir(parents=True, exist_ok=True)
    Path(f"/etc/netns/{srv}/resolv.conf").write_text("nameserver 127.0.0.1\n")


def make_cert(d: Path, cn: str) -> tuple[Path, Path]:
    crt, key = d / f"{cn}.crt", d / f"{cn}.key"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(crt))
    return crt, key


def secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def start_sink(stack: contextlib.ExitStack, base: Path, srv: str) -> subprocess.Popen[bytes]:
    crt, key = make_cert(base, "sink.relaykit.test")
    pw = secret_file(base / "sink.pw", SINK_PASSWORD)
    env = dict(os.environ, PYTHONPATH=SRC_ROOT)
    log = stack.enter_context(open(base / "sink.log", "wb"))  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", srv, sys.executable, "-m", "relaykit.verify.sink",
         "--listen", "127.0.0.1:2525", "--maildir", str(base / "sink"),
         "--require-auth", f"{SINK_USER}:{pw}", "--tls-cert", str(crt), "--tls-key", str(key)],
        env=env, stdout=subprocess.PIPE, stderr=log,
    )
    stack.callback(_stop_if_running, proc)
    assert proc.stdout is not None
    stack.callback(proc.stdout.close)
    assert b"listening on" in proc.stdout.readline()
    return proc


def setup_sasl(stack: contextlib.ExitStack, base: Path) -> None:
    sasl, sock = base / "conf" / "sasl", base / "saslauthd"
    sasl.mkdir(mode=0o755, parents=True)
    sock.mkdir(mode=0o755)
    db = sasl / "sasldb2"
    run("saslpasswd2", "-f", str(db), "-p", "-c", "-u", DOMAIN, USER, stdin=PASSWORD)
    shutil.chown(db, "root", "postfix")  # smtpd reads it (auxprop) as user postfix
    db.chmod(0o640)
    (sasl / "smtpd.conf").write_text(
        f"pwcheck_method: saslauthd\nsaslauthd_path: {sock}/mux\nmech_list: PLAIN LOGIN\n")
    (sasl / "smtpd-aux.conf").write_text(
        f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {db}\n"
        "mech_list: CRAM-MD5 DIGEST-MD5\n")
    script = f"mount --bind {db} /etc/sasldb2 && exec saslauthd -a sasldb -m {sock} -n 1 -d"
    log = stack.enter_context(open(base / "saslauthd.log", "wb"))  # noqa: SIM115
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # saslauthd and its worker: one group, ended together
    )
    stack.callback(stop_group, proc)
    wait_for(lambda: (sock / "mux").exists(), "saslauthd socket")


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


MASTER_CF = """\
{ip}:25   inet n - n - - smtpd
{ip}:2587 inet n - n - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes
{ip}:2465 inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
{ip}:2526 inet n - n - - smtpd -o smtpd_sasl_path=smtpd-aux -o smtpd_tls_auth_only=no
  -o smtpd_sasl_security_options=noanonymous
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def main_cf(base: Path, crt: Path, key: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
maillog_file = /dev/stdout
myhostname = {DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination = {DOMAIN}
alias_maps =
alias_database =
local_transport = error:local delivery disabled in this test
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
relayhost = [127.0.0.1]:2525
smtp_tls_security_level = encrypt
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:{base}/conf/sasl_passwd
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtpd_tls_cert_file = {crt}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_local_domain = {DOMAIN}
cyrus_sasl_config_path = {base}/conf/sasl
smtpd_sasl_security_options = noanonymous, noplaintext
smtpd_sasl_tls_security_options = noanonymous
"""


def start_postfix(stack: contextlib.ExitStack, base: Path, srv: str, crt: Path, key: Path
                  ) -> None:
    conf = base / "conf"
    conf.mkdir(mode=0o755, exist_ok=True)
    (base / "data").mkdir()
    (base / "queue").mkdir(mode=0o755)  # start-fg chdirs there first; it makes the rest
    shutil.chown(base / "data", "postfix")
    (conf / "main.cf").write_text(main_cf(base, crt, key))
    (conf / "master.cf").write_text(MASTER_CF.format(ip=SRV_IP))
    secret_file(conf / "sasl_passwd", f"[127.0.0.1]:2525 {SINK_USER}:{SINK_PASSWORD}\n")
    run("postmap", "-c", str(conf), f"hash:{conf}/sasl_passwd")
    log = base / "postfix.log"
    out = stack.enter_context(open(log, "wb"))  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", srv, "postfix", "-c", str(conf), "start-fg"],
        stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,  # not in pytest's group: Ctrl-C reaches it through stop_postfix
    )
    stack.callback(stop_postfix, proc, conf, base / "queue")
    wait_for(lambda: b"daemon started" in log.read_bytes(), "postfix master")


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    return stop_process(proc, grace=15)


def _stop_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        stop(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End a process started with start_new_session, and every process of its group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
            if not _group_alive(proc.pid):
                return
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_postfix(proc: subprocess.Popen[bytes], conf: Path, queue: Path) -> None:
    """`postfix stop`, then wait for the master: start-fg's `master -s` calls setsid(),
    so signalling the start-fg process (or its group) leaves the master running, in a
    namespace nobody can name any more, its cwd a deleted queue directory (issue 13)."""
    master = _master_pid(queue)
    subprocess.run(["postfix", "-c", str(conf), "stop"], capture_output=True, check=False)
    try:
        if master is not None:
            _wait_master_gone(master)
    finally:
        stop(proc)  # start-fg's shell returns once its master is gone


def _wait_master_gone(master: int) -> None:
    try:
        wait_for(lambda: not _alive(master), "the Postfix master to exit", timeout=30)
    except AssertionError:
        os.killpg(master, signal.SIGKILL)  # its own session and group, children included
        raise


def _master_pid(queue: Path) -> int | None:
    try:
        return int((queue / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """That pid is still a Postfix master, and not a zombie waiting to be reaped."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return comm == b"master\n" and state != b"Z"


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    # Every start registers its stop before waiting for readiness, so a failure or a
    # Ctrl-C at any point unwinds exactly what was started, in reverse (issue 13).
    with contextlib.ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="rkv-"))
        if not os.environ.get("RK_KEEP_TMP"):
            stack.callback(shutil.rmtree, base, ignore_errors=True)
        base.chmod(0o755)  # postfix-owned processes must traverse it
        tag = f"{name_prefix()}{secrets.token_hex(2)}"
        srv, cli = f"{tag}s", f"{tag}c"
        make_netns(stack, srv, cli)
        sink = start_sink(stack, base, srv)
        setup_sasl(stack, base)
        crt, key = make_cert(base, DOMAIN)
        start_postfix(stack, base, srv, crt, key)
        yield Relay(base, srv, cli, pem_sha256(crt.read_text()), [sink])


def _client(relay: Relay) -> list[str]:
    return ["ip", "netns", "exec", relay.cli]


def test_every_check_passes_against_real_postfix(relay: Relay) -> None:
    results = run_suite_via(relay.expectations(), _client(relay))
    table = format_table(results)
    print(table)
    failed = [r for r in results if not r.ok]
    assert not failed, table + "\n--- postfix log ---\n" + (relay.base / "postfix.log").read_text()
    names = {(r.listener, r.name) for r in results}
    assert ("hashed", "auth-DIGEST-MD5") in names and ("smtps", "relay-authenticated") in names
    assert PASSWORD not in table
    sink_log = (relay.base / "sink.log").read_text()
    assert f"auth ok user='{SINK_USER}'" in sink_log and SINK_PASSWORD not in sink_log


def test_wrong_expectations_fail(relay: Relay) -> None:
    exp = relay.expectations()
    sub = replace(exp.listeners[1], expect_mechanisms=PLAIN_MECHS | {"CRAM-MD5"})
    bad = replace(exp, listeners=(sub,), cert_sha256="00" * 32, use_swaks=False)
    results = run_suite_via(bad, _client(relay))
    failed = {r.name for r in results if not r.ok}
    assert {"ehlo-auth-tls", "tls-handshake", "auth-CRAM-MD5"} <= failed, format_table(results)


def test_trusted_loopback_would_be_an_open_relay_and_the_suite_says_so(relay: Relay) -> None:
    # Run the client inside SRV from 127.0.0.1, which is in mynetworks: relaying is
    # permitted without AUTH there, so the unauthenticated relay check must FAIL.
    exp = relay.expectations()
    lo = replace(exp.listeners[0], auth=False, expect_mechanisms=frozenset())
    probe = replace(exp, listeners=(lo,), source_address="127.0.0.1", use_swaks=False)
    results: list[CheckResult] = run_suite_via(probe, ["ip", "netns", "exec", relay.srv])
    unauth = [r for r in results if r.name == "relay-unauthenticated"]
    assert unauth and not unauth[0].ok and "OPEN RELAY" in unauth[0].detail


def test_sink_stops_cleanly_on_sigterm(relay: Relay) -> None:
    sink = relay.procs[0]
    assert stop(sink) == 0
