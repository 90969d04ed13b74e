"""The package on servers that are not fresh (issue 9), in one booted root per suite:

1. host identity: myhostname and the certificate follow the host; dpkg-reconfigure
   after /etc/mailname changes makes them follow again;
2. package swaps: roaming -> gazette-2007 (apt removes roaming), purge the leftover
   roaming, TLS and AUTH still work; and back the other way;
3. a signed apt repository: install by name from a `signed-by=` source, refuse a
   repository signed by another key, `apt-get upgrade` picks up a newer build;
   then every package purged and the root compared with how it was (piuparts-style);
4. an admin's own Postfix + saslauthd + smtpd.conf: roaming refuses to install and
   changes nothing; gazette-2007 with the override question preseeded adopts it; after
   each purge main.cf/master.cf are byte for byte the admin's and AUTH answers 235.

SMTP is spoken from the host, entered into the container's network namespace (loopback
only): `probe()` below, one short Python run per check.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from relaykit import debian
from relaykit.deb.aptrepo import KEYRING_NAME, write_repo
from relaykit.errors import RelaykitError
from relaykit.ui import Log
from relaykit.verify.harness.debroot import systemd_root
from relaykit.verify.harness.testbed import TEST_USER, new_password
from relaykit.verify.package import HOST_NAME, SNAPSHOT, Box, Steps, _compare, _timed, booted
from tests.gpgkeys import signing_key, stop_agent

ROAMING = "relaykit-roaming"
ROAMING2 = "relaykit-roaming2"
GAZETTE = "relaykit-gazette-2007"
ROAMING_REALM = "example.org"
GAZETTE_REALM = "luchs.example"
APT_DIR = "/srv/relaykit-apt"  # the host's repository directory, bind-mounted read-only
TEST_KEYRING = "/usr/share/keyrings/relaykit-test.gpg"
TEST_LIST = "/etc/apt/sources.list.d/relaykit-test.list"
# Only our source: the test root has no network and no other package lists.
APT_ONLY_OURS = f"-o Dir::Etc::SourceList={TEST_LIST} -o Dir::Etc::SourceParts=-"
ADMIN_USER = "bob"
ADMIN_REALM = "admin.test"

# Runs on the host inside the container's network namespace: one SMTP session.
PROBE = r"""
import hashlib, json, smtplib, ssl, sys
port, mode, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is compared by its hash below
out = {}
try:
    if mode == "implicit":
        s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=20, context=ctx)
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    out["banner"] = s.ehlo("probe.test")[1].decode().splitlines()[0]
    if mode == "starttls":
        code, msg = s.starttls(context=ctx)
        out["starttls"] = code
        s.ehlo("probe.test")
    if mode != "plain":
        out["cert_sha256"] = hashlib.sha256(s.sock.getpeercert(True)).hexdigest()
    out["mechanisms"] = sorted(s.esmtp_features.get("auth", "").split())
    if user:
        try:
            code, msg = s.login(user, password)
        except smtplib.SMTPAuthenticationError as exc:
            code, msg = exc.smtp_code, exc.smtp_error
        out["auth"] = code
    s.quit()
except Exception as exc:  # reported, judged by the caller
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def probe(box: Box, port: int, mode: str, user: str = "", password: str = "") -> dict[str, object]:
    """One SMTP session from the host, inside the container's network namespace."""
    proc = subprocess.run(["nsenter", "-t", str(box.pid), "-n", sys.executable, "-c", PROBE,
                           str(port), mode, user, password],
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        result: dict[str, object] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RelaykitError(f"SMTP probe on port {port} failed: {proc.stderr[-300:]}") from exc
    if "error" in result:
        raise RelaykitError(f"SMTP on port {port}: {result['error']}")
    return result


def cert_sha256(box: Box, path: str) -> str:
    pem = box.sh(f"cat {path}").stdout
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def cert_names(box: Box, path: str) -> str:
    return box.sh(f"openssl x509 -in {path} -noout -subject -ext subjectAltName"
                  " -nameopt sep_multiline").stdout


def tls_auth_works(box: Box, package: str, port: int, mode: str, password: str) -> str:
    """STARTTLS/TLS with the package's own certificate, then AUTH as the test user."""
    cert = f"/etc/relaykit/{package}/tls/tls.crt"
    want = cert_sha256(box, cert)
    got = probe(box, port, mode, TEST_USER, password)
    if got.get("cert_sha256") != want:
        raise RelaykitError(f"port {port} presents another certificate than {cert}")
    if mode == "starttls" and got.get("starttls") != 220:
        raise RelaykitError(f"STARTTLS on port {port} answered {got.get('starttls')}")
    if got.get("auth") != 235:
        raise RelaykitError(f"AUTH on port {port} answered {got.get('auth')}, not 235")
    return f"port {port}: TLS with {cert} (sha256 {want[:12]}), AUTH 235"


def apt(box: Box, args: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """apt-get as an unattended run: -y, stdin closed, no tty, no force options."""
    return box.sh(f"apt-get -y -q {args}", stdin="", check=check)


def status(box: Box, package: str) -> str:
    """dpkg's abbreviated status (ii, rc, iF, ...), '' when dpkg does not know it."""
    out = box.sh(f"dpkg-query -W -f '${{db:Status-Abbrev}}' {package}", check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def wait_sasldb_copy(box: Box) -> None:
    box.sh("for i in $(seq 50); do cmp -s /etc/sasldb2 /var/spool/postfix/etc/sasldb2 &&"
           " exit 0; sleep 0.2; done; exit 1")


@dataclass(frozen=True)
class Debs:
    roaming: Path
    roaming_next: Path  # the same profile, a newer version
    gazette: Path
    roaming2: Path  # another package of the roaming profile: the same saslauthd unit


# --- 1 + 2: identity and swaps ---------------------------------------------------------------

def identity(box: Box, password: str) -> str:
    """Fresh install: the host's name, in main.cf and in the certificate; then the admin
    names the host in /etc/mailname and dpkg-reconfigure follows."""
    cert = f"/etc/relaykit/{ROAMING}/tls/tls.crt"
    if box.sh("postconf -h myhostname").stdout.strip() != HOST_NAME:
        raise RelaykitError(f"myhostname is not the host's name {HOST_NAME}")
    if f"DNS:{HOST_NAME}" not in cert_names(box, cert):
        raise RelaykitError(f"the certificate does not name {HOST_NAME}")
    destinations = box.sh("postconf -h mydestination").stdout
    if "localhost.localdomain" not in destinations:  # one of the host's stock names
        raise RelaykitError(f"mydestination lost the host's own names: {destinations}")
    renamed = "relay.deb-test.example"
    box.sh(f"echo {renamed} > /etc/mailname && dpkg-reconfigure -f noninteractive {ROAMING}",
           stdin="")
    try:
        if box.sh("postconf -h myhostname").stdout.strip() != renamed:
            raise RelaykitError("dpkg-reconfigure did not take the name from /etc/mailname")
        if f"DNS:{renamed}" not in cert_names(box, cert):
            raise RelaykitError("dpkg-reconfigure did not make a certificate for the new name")
        tls_auth_works(box, ROAMING, 587, "starttls", password)
    finally:
        box.sh(f"rm -f /etc/mailname && dpkg-reconfigure -f noninteractive {ROAMING}", stdin="")
    return f"myhostname and certificate {HOST_NAME}; after /etc/mailname + reconfigure {renamed}"


def swap(box: Box, debs: Debs, password: str) -> str:
    """roaming -> gazette -> purge roaming -> roaming -> purge gazette, TLS checked."""
    copy = {d.name: f"/root/{d.name}" for d in (debs.roaming, debs.gazette)}
    for deb in (debs.roaming, debs.gazette):
        box.copy_in(deb, copy[deb.name])
    apt(box, f"install {copy[debs.gazette.name]}")
    if status(box, ROAMING) != "rc" or status(box, GAZETTE) != "ii":
        raise RelaykitError(f"after the swap: {ROAMING} {status(box, ROAMING)!r},"
                            f" {GAZETTE} {status(box, GAZETTE)!r}")
    wait_sasldb_copy(box)
    tls_auth_works(box, GAZETTE, 25, "starttls", password)
    apt(box, f"purge {ROAMING}")
    gazette_tls = tls_auth_works(box, GAZETTE, 25, "starttls", password)
    apt(box, f"install {copy[debs.roaming.name]}")
    if status(box, GAZETTE) != "rc":
        raise RelaykitError(f"{GAZETTE} is {status(box, GAZETTE)!r} after the swap back")
    tls_auth_works(box, ROAMING, 587, "starttls", password)
    apt(box, f"purge {GAZETTE}")
    roaming_tls = tls_auth_works(box, ROAMING, 587, "starttls", password)
    tls_auth_works(box, ROAMING, 465, "implicit", password)
    return f"after purging roaming: {gazette_tls}; after purging gazette: {roaming_tls}"


def fail2ban(box: Box, password: str) -> str:
    """Wrong passwords on both listeners, then the shipped filter, through fail2ban-regex,
    on the journal as the jail reads it (backend systemd, the filter's journalmatch) and
    on the same lines as a log file: every failure line matched, with the client's
    address, nothing else."""
    wrong = password + "-wrong"
    for port, mode in ((587, "starttls"), (465, "implicit"), (587, "starttls")):
        if probe(box, port, mode, TEST_USER, wrong).get("auth") != 535:
            raise RelaykitError(f"a wrong password on port {port} was not answered 535")
    # As relaykit(7) says: linked into fail2ban's filter directory (its includes are
    # relative to it).
    filt = "/etc/fail2ban/filter.d/relaykit-sasl.conf"
    box.sh(f"ln -sf /usr/share/relaykit/{ROAMING}/fail2ban/relaykit-sasl.conf {filt}")
    box.sh("journalctl -q --no-pager -o short -u postfix.service -u postfix@-.service"
           " > /root/mail.log")
    failures = int(box.sh("grep -c 'authentication failed' /root/mail.log",
                          check=False).stdout.strip() or 0)
    found = []
    try:
        for source in ("systemd-journal", "/root/mail.log"):
            out = box.sh(f"fail2ban-regex --print-all-matched {source} {filt}").stdout
            m = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", out, re.M)
            matched = int(m.group(1)) if m else -1
            if matched != failures or failures < 3 or "127.0.0.1" not in out:
                raise RelaykitError(f"fail2ban-regex on {source}: {matched} matched,"
                                    f" {failures} failure lines in the log")
            found.append(f"{source}: {matched}/{failures}")
    finally:
        box.sh(f"rm -f {filt} /root/mail.log")
    return "failed AUTH lines matched, client 127.0.0.1 (" + ", ".join(found) + ")"


def swap_saslauthd(box: Box, debs: Debs, password: str) -> str:
    """Two packages that both run relaykit-saslauthd.service on the chroot socket: after
    the swap, purging the leftover one must leave the other's saslauthd, socket
    directory, statoverride and unit enablement alone."""
    for deb in (debs.roaming, debs.roaming2):
        box.copy_in(deb, f"/root/{deb.name}")
    apt(box, f"install /root/{debs.roaming.name}")
    apt(box, f"install /root/{debs.roaming2.name}")
    if status(box, ROAMING) != "rc" or status(box, ROAMING2) != "ii":
        raise RelaykitError(f"after the swap: {ROAMING} {status(box, ROAMING)!r},"
                            f" {ROAMING2} {status(box, ROAMING2)!r}")
    apt(box, f"purge {ROAMING}")
    box.sh("systemctl is-enabled --quiet relaykit-saslauthd.service"
           " && systemctl is-active --quiet relaykit-saslauthd.service"
           " && dpkg-statoverride --list /var/spool/postfix/var/run/saslauthd >/dev/null"
           " && test -S /var/spool/postfix/var/run/saslauthd/mux")
    detail = tls_auth_works(box, ROAMING2, 587, "starttls", password)
    apt(box, f"purge {ROAMING2}")
    return f"after purging {ROAMING}: unit enabled and running, statoverride kept, {detail}"


# --- 3: the signed repository -----------------------------------------------------------------

def version_of(box: Box, package: str) -> str:
    return box.sh(f"dpkg-query -W -f '${{Version}}' {package}").stdout.strip()


def repository(box: Box, debs: Debs, apt_root: Path, log: Log) -> str:
    """Install by name from the signed repository, refuse a forged one, upgrade."""
    try:
        return _repository(box, debs, apt_root, log)
    finally:  # gpg started an agent per key's home
        for home in ("gpg-good", "gpg-evil"):
            stop_agent(apt_root.parent / home)


def _repository(box: Box, debs: Debs, apt_root: Path, log: Log) -> str:
    good_key = signing_key(apt_root.parent / "gpg-good", "relaykit test <apt@deb-test.example>")
    evil_key = signing_key(apt_root.parent / "gpg-evil", "mallory <evil@deb-test.example>")
    good, forged = apt_root / "good", apt_root / "forged"
    write_repo([debs.roaming], good, key=good_key, gnupghome=apt_root.parent / "gpg-good",
               log=log)
    # The attacker's copy serves the newer version, signed by the attacker's key.
    write_repo([debs.roaming_next], forged, key=evil_key,
               gnupghome=apt_root.parent / "gpg-evil", log=log)
    box.copy_in(good / KEYRING_NAME, TEST_KEYRING)
    box.sh(f"chmod 644 {TEST_KEYRING}; printf '%s\\n'"
           f" 'deb [signed-by={TEST_KEYRING}] file://{APT_DIR}/good ./'"
           f" 'deb [signed-by={TEST_KEYRING}] file://{APT_DIR}/forged ./' > {TEST_LIST}")
    update = apt(box, f"update {APT_ONLY_OURS}", check=False)
    text = update.stdout + update.stderr
    if not re.search(r"not signed|NO_PUBKEY|couldn't be verified|Missing key|invalid", text):
        raise RelaykitError(f"apt did not refuse the forged repository: {text[-300:]}")
    apt(box, f"install {ROAMING}")
    first = version_of(box, ROAMING)
    apt(box, f"upgrade {APT_ONLY_OURS}")
    if version_of(box, ROAMING) != first:
        raise RelaykitError("apt upgraded from the repository signed by another key")
    # The real newer build, published where the client trusts it.
    box.sh(f"sed -i '/forged/d' {TEST_LIST}")
    write_repo([debs.roaming_next], good, key=good_key,
               gnupghome=apt_root.parent / "gpg-good", log=log)
    apt(box, f"update {APT_ONLY_OURS}")
    apt(box, f"upgrade {APT_ONLY_OURS}")
    now = version_of(box, ROAMING)
    if now == first:
        raise RelaykitError(f"apt-get upgrade left {ROAMING} at {first}")
    box.sh("systemctl is-active --quiet relaykit-saslauthd.service postfix.service")
    apt(box, f"purge {ROAMING}")
    box.sh(f"rm -f {TEST_LIST} {TEST_KEYRING} /var/lib/apt/lists/*relaykit-apt*")
    return (f"installed {ROAMING} {first} by name (signed-by=), forged repository refused,"
            f" upgraded to {now}")


def failing_service(box: Box, debs: Debs) -> str:
    """A saslauthd that cannot start must fail the installation (no `|| true`): made to
    fail by a drop-in, the install exits non-zero; without it, configuring succeeds."""
    dropin = "/etc/systemd/system/relaykit-saslauthd.service.d"
    box.sh(f"mkdir -p {dropin} && printf '[Service]\\nExecStartPre=/bin/false\\n'"
           f" > {dropin}/broken.conf")
    try:
        box.copy_in(debs.roaming, f"/root/{debs.roaming.name}")
        out = apt(box, f"install /root/{debs.roaming.name}", check=False)
        if out.returncode == 0 or status(box, ROAMING) == "ii":
            raise RelaykitError("the install succeeded with a saslauthd that cannot start")
    finally:
        box.sh(f"rm -rf {dropin} && systemctl daemon-reload")
    box.sh("dpkg --configure -a", stdin="")
    if status(box, ROAMING) != "ii":
        raise RelaykitError(f"{ROAMING} is {status(box, ROAMING)!r} after dpkg --configure -a")
    apt(box, f"purge {ROAMING}")
    return "install failed (non-zero, package not configured); configured once the unit starts"


def admin_map_kept(box: Box, debs: Debs) -> str:
    """gazette-2007 ships /etc/postfix/helo; an admin's own file there is never taken
    over: the preinst stops before dpkg unpacks anything."""
    mine = "# the admin's own helo map\nbad.example REJECT\n"
    box.sh("cat > /etc/postfix/helo", stdin=mine)
    try:
        box.copy_in(debs.gazette, f"/root/{debs.gazette.name}")
        out = apt(box, f"install /root/{debs.gazette.name}", check=False)
        if out.returncode == 0 or "/etc/postfix/helo" not in out.stdout + out.stderr:
            raise RelaykitError("gazette installed over the admin's /etc/postfix/helo")
        if box.sh("cat /etc/postfix/helo").stdout != mine:
            raise RelaykitError("the admin's /etc/postfix/helo changed")
        if status(box, GAZETTE) not in ("", "un", "pn"):
            apt(box, f"purge {GAZETTE}")
        if box.sh("cat /etc/postfix/helo").stdout != mine:
            raise RelaykitError("purging the refused package changed /etc/postfix/helo")
    finally:
        box.sh("rm -f /etc/postfix/helo")
    return "refused before unpacking, naming /etc/postfix/helo; the admin's file unchanged"


# --- 4: an admin's own SMTP AUTH --------------------------------------------------------------

ADMIN_SETUP = r"""
set -e
# An admin's own SMTP AUTH, the 2007 article's way on today's Debian.
cat >> /etc/default/saslauthd <<'X'
START=yes
MECHANISMS="sasldb"
OPTIONS="-m /var/spool/postfix/var/run/saslauthd"
X
mkdir -p /var/spool/postfix/var/run/saslauthd
dpkg-statoverride --add root sasl 710 /var/spool/postfix/var/run/saslauthd
adduser --quiet postfix sasl
printf '%s\n' 'pwcheck_method: saslauthd' 'saslauthd_path: /var/run/saslauthd/mux' \
    'mech_list: PLAIN LOGIN' > /etc/postfix/sasl/smtpd.conf
postconf -e cyrus_sasl_config_path=/etc/postfix/sasl smtpd_sasl_auth_enable=yes \
    smtpd_sasl_local_domain=admin.test 'relayhost=[mx.admin.test]:25' \
    'mynetworks=127.0.0.0/8 192.0.2.0/24'
# Debian 13's unit expects its pid file in /run/saslauthd: follow the socket.
mkdir -p /etc/systemd/system/saslauthd.service.d
printf '[Service]\nPIDFile=/var/spool/postfix/var/run/saslauthd/saslauthd.pid\n' \
    > /etc/systemd/system/saslauthd.service.d/chroot.conf
systemctl daemon-reload
systemctl enable saslauthd >/dev/null 2>&1
systemctl restart saslauthd
systemctl restart postfix
"""
ADMIN_FILES = ("/etc/postfix/main.cf /etc/postfix/master.cf /etc/postfix/sasl/smtpd.conf"
               " /etc/default/saslauthd")
# What roaming's refusal must name: each setting of the admin's it would override.
MUST_NAME = ("saslauthd", "mynetworks", "relayhost", "smtpd_sasl_auth_enable",
             "smtpd_sasl_local_domain", "/etc/postfix/sasl/smtpd.conf")


def admin_auth(box: Box, password: str) -> None:
    got = probe(box, 25, "plain", ADMIN_USER, password)
    if got.get("auth") != 235:
        raise RelaykitError(f"the admin's own AUTH answers {got.get('auth')}, not 235")


def admin_setup(box: Box, password: str) -> str:
    box.sh(ADMIN_SETUP)
    box.sh(f"saslpasswd2 -p -c -u {ADMIN_REALM} {ADMIN_USER}", stdin=password)
    admin_auth(box, password)
    return "saslauthd in the chroot, smtpd.conf, AUTH on port 25: 235"


def admin_refused(box: Box, debs: Debs, password: str) -> str:
    before = box.sh(f"sha256sum {ADMIN_FILES}").stdout
    box.copy_in(debs.roaming, f"/root/{debs.roaming.name}")
    out = apt(box, f"install /root/{debs.roaming.name}", check=False)
    text = out.stdout + out.stderr
    if out.returncode == 0:
        raise RelaykitError("roaming installed over the admin's saslauthd and settings")
    missing = [m for m in MUST_NAME if m not in text]
    if missing:
        raise RelaykitError(f"the refusal does not name: {', '.join(missing)}")
    if box.sh(f"sha256sum {ADMIN_FILES}").stdout != before:
        raise RelaykitError("the refused installation changed the admin's files")
    admin_auth(box, password)
    apt(box, f"purge {ROAMING}")
    if box.sh(f"sha256sum {ADMIN_FILES}").stdout != before:
        raise RelaykitError("purge did not leave the admin's files byte for byte")
    admin_auth(box, password)
    return ("refused (non-zero), naming " + ", ".join(MUST_NAME)
            + "; purged: files identical, AUTH 235")


def admin_adopted(box: Box, debs: Debs, password: str, suite: str) -> str:
    """With the question preseeded to true, gazette-2007 overrides the admin's settings,
    except on a suite where smtpd reads only /etc/postfix/sasl/smtpd.conf: there the
    admin's file would have to be replaced, and the package refuses even so."""
    before = box.sh(f"sha256sum {ADMIN_FILES}").stdout
    box.copy_in(debs.gazette, f"/root/{debs.gazette.name}")
    box.sh(f"echo '{GAZETTE} {GAZETTE}/override-local-settings boolean true'"
           " | debconf-set-selections")
    if suite in debian.SASL_CONFIG_DIR_FIXED:
        out = apt(box, f"install /root/{debs.gazette.name}", check=False)
        if out.returncode == 0 or "/etc/postfix/sasl/smtpd.conf" not in out.stderr + out.stdout:
            raise RelaykitError("gazette did not refuse to replace the admin's smtpd.conf")
        apt(box, f"purge {GAZETTE}")
        if box.sh(f"sha256sum {ADMIN_FILES}").stdout != before:
            raise RelaykitError("purge did not leave the admin's files byte for byte")
        admin_auth(box, password)
        return ("refused despite the preseed (smtpd.conf is the only one read here);"
                " purged: files identical, AUTH 235")
    out = apt(box, f"install /root/{debs.gazette.name}")
    if "overriding" not in out.stdout + out.stderr:
        raise RelaykitError("gazette did not say which settings it overrides")
    mechanisms = probe(box, 25, "plain").get("mechanisms")
    if mechanisms != ["CRAM-MD5", "DIGEST-MD5"]:
        raise RelaykitError(f"gazette's port 25 offers {mechanisms}")
    apt(box, f"purge {GAZETTE}")
    if box.sh(f"sha256sum {ADMIN_FILES}").stdout != before:
        raise RelaykitError("purge did not leave the admin's files byte for byte")
    if box.sh(f"debconf-show {GAZETTE}").stdout.strip():
        raise RelaykitError("purge left the debconf answer behind")
    admin_auth(box, password)
    return "adopted (preseeded), AUTH CRAM-MD5 DIGEST-MD5 on 25; purged: files identical, AUTH 235"


# --- the run ----------------------------------------------------------------------------------

def verify_servers(suite: str, debs: Debs, *, cache_dir: Path, log: Log,
                   mirror: str | None = None) -> tuple[bool, str]:
    steps = Steps(log)
    ok, image, sec = _timed(lambda: systemd_root(suite, cache_dir=cache_dir, mirror=mirror,
                                                 log=log))
    if not steps.add(f"root {suite}", ok, image, sec):
        return False, steps.table()
    password, admin_password = new_password(), new_password()
    with tempfile.TemporaryDirectory(prefix="rk-debservers-") as tmp:
        work = Path(tmp)
        (work / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        apt_root = work / "apt"
        apt_root.mkdir()
        with booted(image, work / "resolv.conf", volumes=((apt_root, APT_DIR),)) as box:

            def step(name: str, fn: Callable[[], str]) -> bool:
                return steps.add(name, *_timed(fn))

            def users() -> str:
                for realm in (ROAMING_REALM, GAZETTE_REALM):
                    box.sh(f"saslpasswd2 -p -c -u {realm} {TEST_USER}", stdin=password)
                return f"{TEST_USER} in {ROAMING_REALM} and {GAZETTE_REALM}"

            def fresh() -> str:
                box.copy_in(debs.roaming, f"/root/{debs.roaming.name}")
                apt(box, f"install /root/{debs.roaming.name}")
                return tls_auth_works(box, ROAMING, 587, "starttls", password)

            step("test users", users)
            before = box.sh(SNAPSHOT).stdout
            if step("fresh install", fresh):
                step("fail2ban filter", lambda: fail2ban(box, password))
                step("identity from the host", lambda: identity(box, password))
                step("swap both ways, purge leftovers", lambda: swap(box, debs, password))
                step("purge", lambda: (apt(box, f"purge {ROAMING}"), "done")[1])
            step("swap two saslauthd packages", lambda: swap_saslauthd(box, debs, password))
            step("signed repository", lambda: repository(box, debs, apt_root, log))
            step("root as before", lambda: _compare(before, box.sh(SNAPSHOT).stdout))
            step("a failing service fails the install", lambda: failing_service(box, debs))
            step("an admin's map file is not taken over", lambda: admin_map_kept(box, debs))
            if step("admin's own AUTH", lambda: admin_setup(box, admin_password)):
                step("over the admin's setup: refused",
                     lambda: admin_refused(box, debs, admin_password))
                step("over the admin's setup: adopted",
                     lambda: admin_adopted(box, debs, admin_password, suite))
    return steps.ok, steps.table()
