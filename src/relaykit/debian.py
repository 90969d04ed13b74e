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

# main.cf values a stock Debian Postfix install writes (main.cf.debian, main.cf.tls and
# the postinst's own postconf -e; measured on Debian 12 and 13 after `apt install postfix`
# with "Internet Site").  A relaykit package that would replace one of these is not
# overriding an admin's choice; any other explicit value is the admin's.
POSTFIX_STOCK_MAIN: dict[str, tuple[str, ...]] = {
    "compatibility_level": ("3.6", "3.9"),
    "cyrus_sasl_config_path": ("/etc/postfix/sasl",),
    "inet_interfaces": ("all",),
    "inet_protocols": ("all",),
    "mynetworks": ("127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", "127.0.0.0/8"),
    "relayhost": ("",),
    "biff": ("no",),
    "append_dot_mydomain": ("no",),
    "smtp_tls_security_level": ("may",),
    "smtp_tls_CAfile": ("/etc/ssl/certs/ca-certificates.crt",),
    "smtp_tls_session_cache_database": ("btree:${data_directory}/smtp_scache",),
    "smtpd_tls_security_level": ("may",),
    "smtpd_tls_cert_file": ("/etc/ssl/certs/ssl-cert-snakeoil.pem",),
    "smtpd_tls_key_file": ("/etc/ssl/private/ssl-cert-snakeoil.key",),
    "smtpd_relay_restrictions": (
        "permit_mynetworks permit_sasl_authenticated defer_unauth_destination",),
}
# Postfix's stock master.cf (Debian installs it as /etc/postfix/master.cf).
POSTFIX_STOCK_MASTER = "/usr/share/postfix/master.cf.dist"
# Suites whose smtpd reads smtpd.conf from /etc/postfix/sasl whatever cyrus_sasl_config_path
# says (measured on Debian 12, Postfix 3.7.11 + Cyrus SASL 2.1.28: with the parameter set
# to another directory, smtpd offered every installed mechanism).  A package there links
# /etc/postfix/sasl/smtpd.conf to its own file.
SASL_CONFIG_DIR_FIXED: dict[str, str] = {"bookworm": "/etc/postfix/sasl"}
