"""Debian facts relaykit builds on, in one place: suites, package sets, epochs, paths.

Adding a Debian release is one entry in SUITES (plus, once locks exist, its lock):
the schema's `base.suite` enum, the image base, the package's unit directory and the
test roots all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    version: int  # Debian major version
    unit_dir: str  # where a package ships systemd units (DEP 17 moved them to /usr in 13)


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("trixie", 13, "/usr/lib/systemd/system"),
    Suite("bookworm", 12, "/lib/systemd/system"),
)}
DEFAULT_SUITE = "trixie"

# What every relay needs at run time: the image base installs it, the package depends on
# it, the test roots preinstall it.
RELAY_PACKAGES = ("postfix", "sasl2-bin", "libsasl2-modules", "ca-certificates", "openssl")
# The image's entrypoint is bash; adduser sets up the sasl group; coreutils for the scripts.
IMAGE_PACKAGES = (*RELAY_PACKAGES, "bash", "adduser", "coreutils")
# Packages whose files the image base drops after installing: the relay never runs a
# package manager.  Their dpkg status entries and file lists stay (scanners, the SBOM),
# and so do their copyright files.  Checked: no file of any other package links against
# them or calls them at run time.  perl-base stays: Debian's postfix start runs
# post-install -> configure-instance.sh -> syncfiles.pl (perl) to fill the chroot.
RUNTIME_DROP_PACKAGES = (
    "apt", "libapt-pkg6.0", "libapt-pkg7.0",  # apt and its library (bookworm, trixie)
    "sqv", "gpgv", "debian-archive-keyring",  # apt's signature checks and keys
    "dpkg",  # dpkg, dpkg-query, update-alternatives, start-stop-daemon
)

# A systemd root booted in Docker to install a .deb for real.
TEST_ROOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", *RELAY_PACKAGES, "adduser")

# SOURCE_DATE_EPOCH of Debian trees relaykit makes (image base, test roots): fixed, so a
# new commit does not invalidate them.  RELAYKIT_BASE_EPOCH overrides for the image base.
BASE_EPOCH = 1767225600  # 2026-01-01T00:00:00Z

# Postfix's chroot and the paths smtpd opens inside it (after chroot).
POSTFIX_CHROOT = "/var/spool/postfix"
SASLDB = "/etc/sasldb2"
SASLDB_IN_CHROOT = SASLDB  # the path smtpd.conf names (opened after chroot)
CHROOT_SASLDB = POSTFIX_CHROOT + SASLDB_IN_CHROOT  # the real file on the host
SASLAUTHD_RUN_IN_CHROOT = "/var/run/saslauthd"
SASLAUTHD_SOCKET_DIR = POSTFIX_CHROOT + SASLAUTHD_RUN_IN_CHROOT


def suite(name: str) -> Suite:
    """The facts of a supported suite; the schema has already refused any other name."""
    return SUITES[name]
