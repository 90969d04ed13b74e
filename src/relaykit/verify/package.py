"""Install a relaykit .deb into a throwaway Debian root booted with systemd, prove it
works on the wire, upgrade it, remove and purge it, and check the root is as before.

Network rules: the container runs with `--network none`; the SMTP client and the sink
(standing in for the smarthost) are host processes entered into its network namespace
(the client through a veth pair from a TEST-NET-2 namespace, so it is outside
mynetworks); relayhost points at the sink on the container's 127.0.0.1 for the test.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from relaykit import debian
from relaykit.deb.package import deb_output, layout, package_settings, units, uses_auxprop
from relaykit.errors import RelaykitError
from relaykit.profile.model import Profile
from relaykit.render.postfix import render
from relaykit.ui import Log
from relaykit.verify.expect import expectations
from relaykit.verify.harness import testbed
from relaykit.verify.harness.debroot import systemd_root
from relaykit.verify.harness.netns import client_link
from relaykit.verify.harness.testbed import TEST_USER, new_password, sink
from relaykit.verify.model import CheckResult, pem_sha256
from relaykit.verify.suite import format_table, run_suite_via

SINK = "127.0.0.1:2525"
# The test server's name: the package must take it (not the profile's placeholder).
HOST_NAME = "mx1.deb-test.example"
CHROOT_SASLDB = debian.CHROOT_SASLDB
LOCAL_EDIT = "# relaykit verify: a local edit that an upgrade must keep"
# What the package may touch, for the before/after comparison: Postfix's settings, main.cf
# and master.cf byte for byte, groups, statoverrides, and (piuparts-style) every path of
# the root with its mode and owner, except run-time and package-manager state.
RUNTIME_PATHS = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log",
                 "/var/cache", "/var/lib/apt", "/var/lib/dpkg", "/root", "/var/mail",
                 "/var/lib/systemd/timers", "/var/lib/systemd/random-seed",
                 "/var/lib/systemd/catalog", "/etc/ld.so.cache", "/srv",
                 # Postfix's queue and sockets: its own run-time state.
                 *(f"/var/spool/postfix/{d}" for d in (
                     "pid", "public", "private", "active", "incoming", "deferred", "defer",
                     "bounce", "maildrop", "flush", "hold", "corrupt", "saved", "trace")))
SNAPSHOT = (r"""
postconf -n; echo '--- master.cf'; postconf -M
echo '--- bytes'; sha256sum /etc/postfix/main.cf /etc/postfix/master.cf
echo '--- group sasl'; getent group sasl
echo '--- statoverrides'; dpkg-statoverride --list | sort
echo '--- packages'; dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'relaykit-*' 2>/dev/null
echo '--- debconf'
debconf-show relaykit-roaming relaykit-gazette-2007 relaykit-satellite 2>/dev/null
echo '--- files'
find / -xdev \( """ + " -o ".join(f"-path {p}" for p in RUNTIME_PATHS) + r""" \) -prune \
    -o -printf '%p %M %u:%g\n' | sort
""")


@dataclass
class Steps:
    """The steps of a package verification: one CheckResult each, logged as they pass."""

    log: Log
    rows: list[CheckResult] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "", seconds: float = 0.0) -> bool:
        self.rows.append(CheckResult(name, "package", ok, f"{detail} ({seconds:.1f} s)"))
        self.log(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}")
        return ok

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def table(self) -> str:
        return format_table(self.rows)


@dataclass(frozen=True)
class Box:
    """A running container with systemd as PID 1."""

    name: str
    pid: int

    def sh(self, script: str, *, stdin: str | None = None, check: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", "exec", "-i", self.name, "sh", "-c", script],
                              input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise RelaykitError(f"in {self.name}: {script.strip()[:80]!r} failed"
                                f" ({proc.returncode}): {(proc.stderr or proc.stdout)[-600:]}")
        return proc

    def copy_in(self, src: Path, dest: str) -> None:
        # Not /tmp: systemd mounts a tmpfs there, hiding what docker cp writes below it.
        subprocess.run(["docker", "cp", str(src), f"{self.name}:{dest}"], check=True,
                       capture_output=True)


@contextmanager
def booted(image: str, resolv: Path, *, keep: bool = False,
           volumes: tuple[tuple[Path, str], ...] = ()) -> Iterator[Box]:
    name = f"rk-deb-{secrets.token_hex(4)}"
    mounts = [arg for src, dest in volumes for arg in ("-v", f"{src}:{dest}:ro")]
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--hostname", HOST_NAME,
         "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
         "--network", "none", "--tmpfs", "/run", "--tmpfs", "/run/lock",
         "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", *mounts,
         "-v", f"{resolv}:/etc/resolv.conf:ro", image, "/sbin/init"],
        check=True, capture_output=True, text=True)
    try:
        pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name],
                                 check=True, capture_output=True, text=True).stdout)
        box = Box(name, pid)
        # Right after start even systemctl's bus may be missing: poll, then --wait.
        state = box.sh("for i in $(seq 100); do s=$(systemctl is-system-running 2>/dev/null);"
                       " case $s in running|degraded) break;; esac; sleep 0.3; done;"
                       " echo $s").stdout.strip()
        if state not in ("running", "degraded"):
            raise RelaykitError(f"systemd in {name} did not come up: {state!r}")
        yield box
    finally:
        if not keep:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def _timed(fn: Callable[[], str]) -> tuple[bool, str, float]:
    start = time.monotonic()
    try:
        return True, fn(), time.monotonic() - start
    except (RelaykitError, subprocess.SubprocessError, OSError) as exc:
        return False, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__, \
            time.monotonic() - start


def _install(box: Box, deb: Path) -> str:
    """As an unattended run would: `apt-get -y`, stdin closed, no tty, no DEBIAN_FRONTEND
    and no --force-conf* option: a prompt (conffile or debconf) would fail or hang here."""
    box.copy_in(deb, f"/root/{deb.name}")
    out = box.sh(f"apt-get install -y -q /root/{deb.name}", stdin="")
    prompts = [line for line in (out.stdout + out.stderr).splitlines()
               if "Configuration file" in line or "*** " in line]
    if prompts:
        raise RelaykitError(f"installing {deb.name} stopped at a prompt: {prompts[0]}")
    return deb.name


def _services(box: Box, p: Profile) -> str:
    names = [*units(p), "postfix.service"]
    # The path unit reacts at once; saslauthd forks: give both a moment.
    out = box.sh("for i in $(seq 50); do systemctl is-active --quiet " + " ".join(names)
                 + " && break; sleep 0.2; done; systemctl is-active " + " ".join(names),
                 check=False)
    states = out.stdout.split()
    if out.returncode != 0:
        raise RelaykitError("not active: " + ", ".join(
            f"{n}={s}" for n, s in zip(names, states, strict=False) if s != "active"))
    if uses_auxprop(p) or p.sasl is None:
        return " ".join(names) + " active"
    count = box.sh("grep -lx saslauthd /proc/[0-9]*/comm | wc -l").stdout.strip()
    return " ".join(names) + f" active; saslauthd processes: {count}"


def _add_user(box: Box, p: Profile, password: str) -> str:
    assert p.sasl is not None
    box.sh(f"saslpasswd2 -p -c -u {p.sasl.realm} {TEST_USER}", stdin=password)
    if not uses_auxprop(p):
        return f"{TEST_USER} in realm {p.sasl.realm}"
    # No manual sync: the .path unit must copy /etc/sasldb2 into the chroot by itself.
    out = box.sh(f"for i in $(seq 50); do cmp -s /etc/sasldb2 {CHROOT_SASLDB} && break;"
                 f" sleep 0.2; done; stat -c '%U:%G %a' {CHROOT_SASLDB};"
                 f" cmp /etc/sasldb2 {CHROOT_SASLDB}"
                 f" && [ ! -L {CHROOT_SASLDB} ]", check=False)
    if out.returncode != 0 or out.stdout.split()[:2] != ["root:postfix", "640"]:
        raise RelaykitError(f"chroot sasldb copy not synced: {out.stdout.strip()}"
                            f" {out.stderr.strip()}")
    return f"{TEST_USER}; chroot copy synced by the .path unit (root:postfix 640)"


def _suite(box: Box, p: Profile, password: str, work: Path) -> tuple[str, list[CheckResult]]:
    """relayhost -> sink (test only), then the conformance suite from a TEST-NET client."""
    _relayhost_to_sink(box)
    cert = box.sh(f"cat {cert_path(p)}").stdout
    # The package takes its identity from the host (a placeholder myhostname is not used).
    name = box.sh("postconf -h myhostname").stdout.strip()
    runner = ["nsenter", "-t", str(box.pid), "-n"]
    with sink(runner, work / f"sink-{secrets.token_hex(3)}", SINK) as maildir, \
            client_link(box.pid) as link:
        exp = expectations(p, host=link.server_address, user=TEST_USER, password=password,
                           sink_dir=maildir, cert_sha256=pem_sha256(cert),
                           source_address=link.client_address)
        exp = dataclasses.replace(exp, local_sender_domain=name, relay_domain=name,
                                  server_name=name)
        results = run_suite_via(exp, link.runner)
    bad = [r for r in results if not r.ok]
    if bad:
        raise _SuiteFailed(results)
    return f"{len(results)} checks passed", results


class _SuiteFailed(RelaykitError):
    def __init__(self, results: list[CheckResult]) -> None:
        bad = [f"{r.listener}/{r.name}" for r in results if not r.ok]
        super().__init__(f"{len(bad)} failed: {', '.join(bad[:6])}")
        self.results = results


SMARTHOST = "127.0.0.1:2587"


def _smarthost(box: Box, p: Profile, work: Path) -> str:
    """As docs/deb.md tells the admin: sasl_passwd keyed like the relayhost, postmap,
    relayhost; then local mail must reach a smarthost that demands STARTTLS + AUTH."""
    from relaykit.verify.harness.testbed import self_signed, submit_and_expect, write_secret

    host, port = SMARTHOST.rsplit(":", 1)
    relayhost, user, pw = f"[{host}]:{port}", "satellite", new_password()
    box.sh("umask 077; cat > /etc/postfix/sasl_passwd && postmap /etc/postfix/sasl_passwd"
           f" && postconf -e 'relayhost = {relayhost}' && postfix reload >/dev/null",
           stdin=f"{relayhost} {user}:{pw}\n")
    pw_file = work / "smarthost.pw"
    write_secret(pw_file, pw)
    tls = self_signed(work, "smarthost.example", "smarthost")[:2]
    runner = ["nsenter", "-t", str(box.pid), "-n"]
    try:
        with sink(runner, work / "smarthost", SMARTHOST, auth_file=pw_file, user=user,
                  tls=tls) as maildir:
            result = submit_and_expect(runner, 25, maildir, p)
    finally:
        # The admin's files, not the package's: take them away so purge can be compared.
        box.sh("rm -f /etc/postfix/sasl_passwd /etc/postfix/sasl_passwd.db", check=False)
    if not result.ok:
        raise RelaykitError(result.detail)
    leaked = box.sh(f"journalctl -q --no-pager | grep -cF -- '{pw}'", check=False)
    if leaked.stdout.strip() not in ("", "0"):
        raise RelaykitError("the smarthost password appears in the journal")
    return f"{result.detail} (as {user} to {relayhost})"


SMARTHOST_NAME = "smarthost.deb-test.example"  # in the root's /etc/hosts only
TEST_CA = "/usr/local/share/ca-certificates/relaykit-test-ca.crt"


def _smarthost_verified(box: Box, p: Profile, work: Path) -> str:
    """docs/deb.md's recipe: the smarthost's CA in the system store, level `secure`.
    The real smarthost (certificate from that CA, for its name) gets the mail; an
    impostor on the same address (self-signed, same name) gets neither mail nor AUTH."""
    from relaykit.verify.harness.testbed import self_signed, submit_and_expect, write_secret

    port = SMARTHOST.rsplit(":", 1)[1]
    relayhost, user, pw = f"[{SMARTHOST_NAME}]:{port}", "satellite", new_password()
    ca, leaf, key = testbed.issue_test_ca(work / "ca", SMARTHOST_NAME)
    impostor = self_signed(work, SMARTHOST_NAME, "impostor")[:2]
    pw_file = work / "verified.pw"
    write_secret(pw_file, pw)
    hosts = box.sh("cat /etc/hosts").stdout
    box.copy_in(ca, TEST_CA)
    # smtp_host_lookup=native: the test root has no DNS, the name is in /etc/hosts (test
    # only, removed below); Postfix copies /etc/hosts into its chroot when it starts.
    box.sh(f"echo '127.0.0.1 {SMARTHOST_NAME}' >> /etc/hosts && update-ca-certificates"
           " >/dev/null && umask 077 && cat > /etc/postfix/sasl_passwd"
           " && postmap /etc/postfix/sasl_passwd"
           f" && postconf -e 'relayhost = {relayhost}' smtp_tls_security_level=secure"
           " smtp_host_lookup=native && systemctl restart postfix",
           stdin=f"{relayhost} {user}:{pw}\n")
    runner = ["nsenter", "-t", str(box.pid), "-n"]
    try:
        with sink(runner, work / "verified", SMARTHOST, auth_file=pw_file, user=user,
                  tls=(leaf, key)) as maildir:
            real = submit_and_expect(runner, 25, maildir, p)
        if not real.ok:
            raise RelaykitError(f"to the verified smarthost: {real.detail}")
        with sink(runner, work / "impostor", SMARTHOST, auth_file=pw_file, user=user,
                  tls=impostor) as maildir:
            fake = submit_and_expect(runner, 25, maildir, p, timeout=8.0)
            seen = (maildir.parent / f"sink-{maildir.name}.log").read_text(errors="replace")
        journal = box.sh("journalctl -q --no-pager -u postfix.service -u postfix@-.service"
                         " | grep -c -e 'not trusted' -e 'verification failed'"
                         " -e 'not verified'", check=False).stdout.strip()
        if fake.ok or "auth ok" in seen or "auth failed" in seen or journal in ("", "0"):
            raise RelaykitError(f"impostor: delivered={fake.ok}, AUTH seen="
                                f"{'auth ' in seen}, refusals logged={journal}")
    finally:
        box.sh(f"rm -f {TEST_CA} /etc/postfix/sasl_passwd /etc/postfix/sasl_passwd.db"
               " && update-ca-certificates --fresh >/dev/null && postsuper -d ALL"
               " >/dev/null 2>&1; postconf -X smtp_host_lookup; cat > /etc/hosts"
               " && systemctl restart postfix", stdin=hosts, check=False)
    return f"verified {SMARTHOST_NAME} with the installed CA; impostor refused, no AUTH sent"


def cert_path(p: Profile) -> str:
    """Where the installed package's certificate is (its own directory when managed)."""
    return f"{layout(p).tls_dir}/tls.crt" if p.tls.managed else p.tls.cert_file


def _relayhost_to_sink(box: Box) -> None:
    """Test only, and a local main.cf change the package must respect on upgrade."""
    host, port = SINK.rsplit(":", 1)
    box.sh(f"postconf -e 'relayhost = [{host}]:{port}' && postfix reload >/dev/null")


def _upgrade(box: Box, p: Profile, new: Path) -> str:
    edited_conffile = layout(p).conf
    _relayhost_to_sink(box)
    box.sh(f"echo '{LOCAL_EDIT}' >> {edited_conffile}")
    _install(box, new)
    version = box.sh(f"dpkg-query -W -f '${{Version}}' {deb_name(new)}").stdout
    if box.sh(f"grep -qxF '{LOCAL_EDIT}' {edited_conffile}", check=False).returncode != 0:
        raise RelaykitError(f"the local edit of {edited_conffile} was lost")
    # relayhost was changed locally (pointed at the sink): a local change wins.
    relayhost = box.sh("postconf -h relayhost").stdout.strip()
    if relayhost != f"[127.0.0.1]:{SINK.rsplit(':', 1)[1]}":
        raise RelaykitError(f"upgrade overwrote the locally set relayhost ({relayhost!r})")
    return f"now {version}; local conffile edit and relayhost kept"


def deb_name(deb: Path) -> str:
    return deb.name.split("_", 1)[0]


def _remove(box: Box, p: Profile, purge: bool) -> str:
    pkg = deb_output(p).package
    box.sh(f"DEBIAN_FRONTEND=noninteractive apt-get {'purge' if purge else 'remove'} -y -q {pkg}")
    active = [u for u in units(p)
              if box.sh(f"systemctl is-active --quiet {u}", check=False).returncode == 0]
    if active:
        raise RelaykitError(f"still active after {'purge' if purge else 'remove'}: {active}")
    return "units stopped" if units(p) else "done"


def _compare(before: str, after: str) -> str:
    if before == after:
        return "postconf -n/-M, group sasl, statoverrides, files: identical"
    a, b = set(before.splitlines()), set(after.splitlines())
    diff = [f"-{x}" for x in sorted(a - b)] + [f"+{x}" for x in sorted(b - a)]
    raise RelaykitError("root differs after purge: " + "; ".join(diff[:20]))


def verify_deb(profile: Profile, deb_path: Path, *, log: Log, upgrade_to: Path | None = None,
               cache_dir: Path | None = None, mirror: str | None = None,
               keep: bool = False) -> tuple[bool, str]:
    """install -> services -> user -> SMTP suite -> [upgrade] -> remove -> purge -> diff.

    Returns (every step passed, the result table), as the image verifier does."""
    from relaykit.oci import default_cache_dir

    steps = Steps(log)
    ok, detail, sec = _timed(lambda: systemd_root(
        profile.base.suite, cache_dir=cache_dir or default_cache_dir(),
        mirror=mirror or profile.base.mirror, extra_packages=profile.base.extra_packages,
        log=log))
    if not steps.add(f"root {profile.base.suite}", ok, detail, sec):
        return False, steps.table()
    image = detail
    password = new_password()
    with tempfile.TemporaryDirectory(prefix="rk-debverify-") as tmp:
        work = Path(tmp)
        (work / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        start = time.monotonic()
        with booted(image, work / "resolv.conf", keep=keep) as box:
            steps.add("boot systemd", True, box.name, time.monotonic() - start)
            _run_steps(steps, box, profile, deb_path, upgrade_to, password, work)
    return steps.ok, steps.table()


def _run_steps(steps: Steps, box: Box, p: Profile, deb: Path, new: Path | None,
               password: str, work: Path) -> None:
    before = box.sh(SNAPSHOT).stdout

    def step(name: str, fn: Callable[[], str]) -> bool:
        return steps.add(name, *_timed(fn))

    if not step("install", lambda: _install(box, deb)):
        return
    step("services active", lambda: _services(box, p))
    if p.sasl is not None and step("add SASL user", lambda: _add_user(box, p, password)):
        step("SMTP suite", lambda: _suite_detail(box, p, password, work, steps))
    if p.outbound.sasl and step("mail via smarthost", lambda: _smarthost(box, p, work)):
        step("smarthost certificate verified", lambda: _smarthost_verified(box, p, work))
    if new is not None and step("upgrade", lambda: _upgrade(box, p, new)):
        step("services active after upgrade", lambda: _services(box, p))
        if p.sasl is not None:
            step("SMTP suite after upgrade", lambda: _suite_detail(box, p, password, work, steps))
    # The test's own change (relayhost -> sink) is reverted by the package when it owns
    # relayhost.  A placeholder relayhost is the admin's to set: the test, as the admin,
    # puts its own change back before removing the package (then nothing but the
    # package's changes remain, and main.cf/master.cf come back byte for byte).
    if "relayhost" not in dict(package_settings(p, render(p))):
        old = next((line.split(" = ", 1)[1] for line in before.splitlines()
                    if line.startswith("relayhost = ")), "")
        box.sh(f"postconf -e 'relayhost = {old}'")
    step("remove", lambda: _remove(box, p, purge=False))
    step("purge", lambda: _remove(box, p, purge=True))
    step("root as before", lambda: _compare(before, box.sh(SNAPSHOT).stdout))


def _suite_detail(box: Box, p: Profile, password: str, work: Path, steps: Steps) -> str:
    try:
        detail, _ = _suite(box, p, password, work)
        return detail
    except _SuiteFailed as exc:
        steps.log(format_table(exc.results))
        raise
