"""What goes into the .deb: a pure function from profile + rendering to a file list.

Nothing here touches the disk except `template()` (reading the shipped templates), so the
package's contents are testable without dpkg.  `build.py` writes and packs them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import re
import textwrap
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from relaykit import debian
from relaykit.buildinfo import BuildInputs
from relaykit.debian import SASLAUTHD_SOCKET_DIR
from relaykit.errors import RelaykitError
from relaykit.profile.model import DebOutput, Profile
from relaykit.render.postfix import (
    HEADER,
    RUNTIME_CONF,
    SASL_CONFIG_DIR,
    SASLAUTHD_DEFAULTS,
    MasterEntry,
    Rendered,
    Setting,
    config_tree,
)

# Depends of every relaykit package (the list); postfix >= 3.6 for
# compatibility_level 3.6 and `-o { k = v }` in master.cf.
BASE_DEPENDS = ("postfix (>= 3.6)", "sasl2-bin", "libsasl2-modules", "openssl",
                "ca-certificates", "adduser", "debconf (>= 0.5) | debconf-2.0")
# All relaykit packages ship /usr/lib/relaykit/common.sh and friends: only one at a time
# (Policy 7.6.2: Provides + Conflicts on one virtual package).
VIRTUAL = "relaykit-relay"
COMMON_SH = "/usr/lib/relaykit/common.sh"
SYNC_COMMAND = "/usr/sbin/relaykit-sasldb-sync"
SASLAUTHD_UNIT = "relaykit-saslauthd.service"
SYNC_PATH_UNIT = "relaykit-sasldb-sync.path"
SYNC_SERVICE_UNIT = "relaykit-sasldb-sync.service"


# Values in main.cf.edits the postinst computes on the host (identity from the host).
HOST_NAME_MARKER = "<relaykit:host-name>"
# Names reserved for documentation and tests (RFC 2606, RFC 6761): a profile naming its
# host or smarthost this way has not pinned it; the package uses the host's own.
PLACEHOLDER_SUFFIXES = (".example", ".test", ".invalid", ".localhost",
                        ".example.com", ".example.net", ".example.org")
PLACEHOLDER_NAMES = ("example", "example.com", "example.net", "example.org")


def is_placeholder(name: str) -> bool:
    """A reserved example name, bracketed or with a port or not (`[smtp.example.net]:587`)."""
    host = name.strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.lower().rstrip(".")
    return host in PLACEHOLDER_NAMES or host.endswith(PLACEHOLDER_SUFFIXES)


@dataclass(frozen=True)
class Layout:
    """Where one package keeps its files: everything under its own name, so that two
    relaykit packages (one installed, one removed but not purged) never share a file."""

    package: str

    @property
    def etc(self) -> str:
        return f"/etc/relaykit/{self.package}"

    @property
    def conf(self) -> str:
        return f"{self.etc}/relaykit.conf"

    @property
    def sasl_dir(self) -> str:
        return f"{self.etc}/sasl"

    @property
    def saslauthd_env(self) -> str:
        return f"{self.etc}/saslauthd"

    @property
    def tls_dir(self) -> str:
        return f"{self.etc}/tls"

    @property
    def share(self) -> str:
        return f"/usr/share/relaykit/{self.package}"

    @property
    def state(self) -> str:
        return f"/var/lib/relaykit/{self.package}"

    def relocate(self, path: str) -> str:
        """The package's path for a file config_tree renders at a shared path."""
        moved = {RUNTIME_CONF: self.conf,
                 f"{SASL_CONFIG_DIR}/smtpd.conf": f"{self.sasl_dir}/smtpd.conf",
                 SASLAUTHD_DEFAULTS: self.saslauthd_env,
                 "/etc/relaykit/tls": self.tls_dir}
        return moved.get(path, path)


def layout(p: Profile) -> Layout:
    return Layout(deb_output(p).package)


@dataclass(frozen=True)
class DebFile:
    path: str  # absolute path in the installed system
    data: bytes
    mode: int = 0o644

    @property
    def conffile(self) -> bool:
        return self.path.startswith("/etc/")


@dataclass(frozen=True)
class DebContents:
    files: tuple[DebFile, ...]  # sorted by path
    dirs: tuple[str, ...]  # directories shipped even when empty (e.g. /etc/relaykit/tls)
    control: dict[str, bytes]  # DEBIAN/ name -> content (scripts get mode 0755)


def template(name: str) -> str:
    """A shipped template: scripts/<name> or files/<name>."""
    return (resources.files("relaykit.deb") / name).read_text(encoding="utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    """@NAME@ substitution; an unknown placeholder left behind is a build bug."""
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise RelaykitError(f"unfilled template placeholder(s): {', '.join(left)}")
    return text


def deb_output(p: Profile) -> DebOutput:
    if p.deb is None:
        raise RelaykitError(f"profile {p.name!r} declares no outputs.deb")
    return p.deb


def uses_saslauthd(p: Profile) -> bool:
    return p.sasl is not None and p.sasl.backend == "saslauthd"


def uses_auxprop(p: Profile) -> bool:
    return p.sasl is not None and p.sasl.needs_chroot_sasldb


def units(p: Profile) -> tuple[str, ...]:
    """Units the package enables (the sync .service is started by its .path)."""
    out: list[str] = []
    if uses_saslauthd(p):
        out.append(SASLAUTHD_UNIT)
    if uses_auxprop(p):
        out.append(SYNC_PATH_UNIT)
    return tuple(out)


def unit_dir(p: Profile) -> str:
    return debian.suite(p.base.suite).unit_dir


# --- data files --------------------------------------------------------------------------

def master_line(e: MasterEntry) -> str:
    """One master.cf entry on one line, as `postconf -M key=...` takes it."""
    return " ".join(part.strip() for part in e.render().splitlines())


def package_settings(p: Profile, rendered: Rendered) -> list[Setting]:
    """main.cf as the package applies it: its own paths, and the host's identity where
    the profile names a placeholder (myhostname, mydomain, relayhost: see is_placeholder).

    mydestination is merged with the host's own names by the postinst."""
    lay = layout(p)
    fixed = debian.SASL_CONFIG_DIR_FIXED.get(p.base.suite)
    paths = {"cyrus_sasl_config_path": fixed or lay.sasl_dir}
    if p.tls.managed:
        paths["smtpd_tls_cert_file"] = f"{lay.tls_dir}/tls.crt"
        paths["smtpd_tls_key_file"] = f"{lay.tls_dir}/tls.key"
    out: list[Setting] = []
    for key, value in rendered.main_settings:
        if key == "myhostname" and is_placeholder(value):
            value = HOST_NAME_MARKER
        elif key in ("mydomain", "relayhost") and value and is_placeholder(value):
            continue  # not pinned: the host's value stays (the admin sets relayhost)
        out.append((key, paths.get(key, value)))
    return out


def stock_main() -> str:
    """Stock Debian main.cf values (debian.POSTFIX_STOCK_MAIN), `key<TAB>value` lines."""
    return "".join(f"{k}\t{v}\n" for k, vs in sorted(debian.POSTFIX_STOCK_MAIN.items())
                   for v in vs)


def postconf_data(p: Profile, rendered: Rendered) -> list[DebFile]:
    share = layout(p).share
    settings = package_settings(p, rendered)
    for key, value in settings:
        if "\n" in value or "\t" in value:
            raise RelaykitError(f"main.cf value of {key} holds a tab or newline")
    main = "".join(f"{k} = {v}\n" for k, v in settings)
    master = "".join(f"{e.key}\t{master_line(e)}\n" for e in rendered.listeners)
    return [DebFile(f"{share}/main.cf.edits", main.encode()),
            DebFile(f"{share}/master.cf.entries", master.encode()),
            DebFile(f"{share}/main.cf.stock", stock_main().encode())]


def version_free(data: bytes, p: Profile) -> bytes:
    """Conffiles must change only when their content does: drop the profile version from
    the generated header, or every upgrade would make dpkg ask about every conffile."""
    header = HEADER.format(name=p.name, version=p.version).encode()
    if not data.startswith(header):
        return data
    return (f"# Generated by relaykit from profile {p.name!r} for package"
            f" {deb_output(p).package}.\n").encode() + data[len(header):]


def runtime_conf(p: Profile, data: bytes) -> bytes:
    """relaykit.conf with the package's own paths (the TLS pair under its own name)."""
    lay = layout(p)
    values = {"RELAYKIT_PACKAGE": deb_output(p).package}
    if p.tls.managed:
        values |= {"RELAYKIT_TLS_CERT": f"{lay.tls_dir}/tls.crt",
                   "RELAYKIT_TLS_KEY": f"{lay.tls_dir}/tls.key"}
    lines = data.decode().splitlines(keepends=True)
    out = []
    for line in lines:
        key = line.split("=", 1)[0]
        out.append(f"{key}='{values.pop(key)}'\n" if key in values else line)
    out += [f"{k}='{v}'\n" for k, v in values.items()]
    return "".join(out).encode()


def config_files(p: Profile) -> tuple[list[DebFile], list[str]]:
    """The conffiles (from render.config_tree, moved under the package's own name where
    the renderer uses a shared path) and the empty directories to ship."""
    lay = layout(p)
    files: list[DebFile] = []
    dirs: list[str] = []
    tree = config_tree(p)
    for entry in tree:
        path = lay.relocate(entry.path)
        if entry.kind == "file":
            data = version_free(entry.data, p)
            if entry.path == RUNTIME_CONF:
                data = runtime_conf(p, data)
            files.append(DebFile(path, data, entry.mode))
        elif entry.kind == "dir" and entry.path in tree.entries:
            dirs.append(path)
        elif entry.kind == "symlink":
            raise RelaykitError(f"config_tree has a symlink at {entry.path}: not supported")
    return files, dirs


def helper_files(p: Profile, static_rootfs: Path, values: dict[str, str]) -> list[DebFile]:
    common = static_rootfs / COMMON_SH.lstrip("/")
    if not common.is_file():
        raise RelaykitError(f"missing shared shell helpers {common}")
    out = [DebFile(COMMON_SH, common.read_bytes())]
    udir = unit_dir(p)
    if uses_saslauthd(p):
        out.append(DebFile(f"{udir}/{SASLAUTHD_UNIT}",
                           fill(template(f"files/{SASLAUTHD_UNIT}"), values).encode()))
    if uses_auxprop(p):
        out.append(DebFile(SYNC_COMMAND, fill(template("files/relaykit-sasldb-sync"),
                                              values).encode(), 0o755))
        out.append(DebFile("/usr/share/man/man8/relaykit-sasldb-sync.8.gz",
                           gzip_n(template("files/relaykit-sasldb-sync.8").encode())))
        for unit in (SYNC_PATH_UNIT, SYNC_SERVICE_UNIT):
            out.append(DebFile(f"{udir}/{unit}", template(f"files/{unit}").encode()))
    return out


# --- documentation -----------------------------------------------------------------------

def gzip_n(data: bytes) -> bytes:
    """gzip -9n: no name, no time stamp, so the bytes depend on the data only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


MIT = """\
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify,
 merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
 permit persons to whom the Software is furnished to do so, subject to the following
 conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies
 or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
 PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
 HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
 CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR
 THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def copyright_file(p: Profile, epoch: int) -> str:
    year = time.gmtime(epoch).tm_year
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: relaykit\n"
        f"Comment: Generated by relaykit from the profile {p.name!r} {p.version}.\n\n"
        f"Files: *\nCopyright: {year} relaykit developers\nLicense: MIT\n\n"
        f"License: MIT\n{MIT}"
    )


def changelog(p: Profile, inputs: BuildInputs) -> str:
    deb = deb_output(p)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(inputs.epoch))
    return (
        f"{deb.package} ({deb.version}) {p.base.suite}; urgency=medium\n\n"
        f"  * Built by relaykit from profile {p.name} {p.version}.\n"
        f"  * relaykit revision {inputs.revision[:12]}.\n\n"
        f" -- {deb.maintainer}  {date}\n"
    )


def doc_files(p: Profile, inputs: BuildInputs, values: dict[str, str]) -> list[DebFile]:
    doc = f"/usr/share/doc/{deb_output(p).package}"
    share = layout(p).share
    return [
        DebFile("/usr/share/man/man7/relaykit.7.gz",
                gzip_n(fill(template("files/relaykit.7"), values).encode())),
        DebFile(f"{share}/fail2ban/relaykit-sasl.conf",
                template("files/relaykit-sasl.conf").encode()),
        DebFile(f"{share}/fail2ban/jail.conf", template("files/jail.conf").encode()),
        DebFile(f"{doc}/copyright", copyright_file(p, inputs.epoch).encode()),
        DebFile(f"{doc}/changelog.Debian.gz", gzip_n(changelog(p, inputs).encode())),
        DebFile(f"{doc}/README.Debian", fill(template("files/README.Debian"), values).encode()),
    ]


def readme_sync_note(p: Profile) -> str:
    if not uses_auxprop(p):
        return ""
    return ("CRAM-MD5 and DIGEST-MD5 are checked inside Postfix's chroot against a copy of\n"
            "/etc/sasldb2 (/var/spool/postfix/etc/sasldb2).  relaykit-sasldb-sync.path\n"
            "refreshes it after every change; by hand: relaykit-sasldb-sync.\n")


# --- control -----------------------------------------------------------------------------

def description(p: Profile) -> str:
    lines = [f"relaykit profile {p.name} {p.version}: Postfix + Cyrus SASL relay."]
    for lis in p.listeners:
        auth = "AUTH" if lis.auth else "no AUTH"
        lines.append(f"Listener {lis.name}: port {lis.port}, TLS {lis.tls}, {auth}.")
    if p.sasl is not None:
        lines.append(f"SASL: {p.sasl.backend}, mechanisms {' '.join(p.sasl.mechanisms)},"
                     f" realm {p.sasl.realm}.")
    if p.outbound.relayhost:
        lines.append(f"Relays outbound mail through {p.outbound.relayhost}.")
    lines.append("The package edits main.cf and master.cf with postconf and reverts"
                 " its changes on removal.")
    body = "\n".join(f" {line}" for line in _wrap(" ".join(lines)))
    return f"{synopsis(p.description)}\n{body}"


def synopsis(text: str) -> str:
    """Policy 3.4.1 style: no leading article, no final full stop, under 80 characters."""
    text = text.strip().rstrip(".")
    first, _, rest = text.partition(" ")
    if first.lower() in ("a", "an", "the") and rest:
        text = rest[0].upper() + rest[1:]
    if len(text) > 79:
        raise RelaykitError(f"description too long for a package synopsis ({len(text)} > 79)",
                            hint="shorten the profile's description")
    return text


def _wrap(text: str, width: int = 78) -> list[str]:
    return textwrap.wrap(text, width=width, break_on_hyphens=False)


def installed_size(files: list[DebFile], dirs: set[str]) -> int:
    """KiB as dpkg-gencontrol counts: each file rounded up, 1 per directory."""
    return sum(math.ceil(len(f.data) / 1024) for f in files) + len(dirs)


def all_dirs(files: list[DebFile], extra: list[str]) -> set[str]:
    out = set(extra)
    for f in files:
        parts = f.path.strip("/").split("/")[:-1]
        out.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in extra:
        parts = d.strip("/").split("/")
        out.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def control_file(p: Profile, files: list[DebFile], dirs: set[str]) -> str:
    deb = deb_output(p)
    depends = [*BASE_DEPENDS, *p.base.extra_packages]
    fields = [
        ("Package", deb.package),
        ("Version", deb.version),
        ("Architecture", "all"),
        ("Maintainer", deb.maintainer),
        ("Installed-Size", str(installed_size(files, dirs))),
        ("Depends", ", ".join(dict.fromkeys(depends))),
        ("Provides", VIRTUAL),
        ("Conflicts", VIRTUAL),
        ("Section", deb.section),
        ("Priority", "optional"),
        ("Description", description(p)),
    ]
    return "".join(f"{k}: {v}\n" for k, v in fields)


def md5sums(files: list[DebFile]) -> str:
    return "".join(f"{hashlib.md5(f.data).hexdigest()}  {f.path.lstrip('/')}\n"
                   for f in sorted(files, key=lambda f: f.path))


def foreign_conffiles(p: Profile) -> list[str]:
    """Conffiles outside /etc/relaykit/<package> (restriction maps at the profile's paths):
    the preinst refuses to install over such a file that some admin made."""
    etc = layout(p).etc + "/"
    return [f.path for f in config_files(p)[0] if not f.path.startswith(etc)]


def script_values(p: Profile) -> dict[str, str]:
    deb = deb_output(p)
    lay = layout(p)
    return {
        "PACKAGE": deb.package,
        "PROFILE": p.name,
        "REALM": p.sasl.realm if p.sasl else "(no SASL in this profile)",
        "SASLAUTHD": "yes" if uses_saslauthd(p) else "no",
        "AUXPROP": "yes" if uses_auxprop(p) else "no",
        "UNITS": " ".join(units(p)),
        "SOCKET_DIR": SASLAUTHD_SOCKET_DIR,
        "CHROOT_SASLDB": debian.CHROOT_SASLDB,
        "SYNC_NOTE": readme_sync_note(p),
        "ETC": lay.etc,
        "CONF": lay.conf,
        "SASLAUTHD_ENV": lay.saslauthd_env,
        "TLS_DIR": lay.tls_dir,
        "HOST_NAME_MARKER": HOST_NAME_MARKER,
        "FOREIGN_CONFFILES": " ".join(foreign_conffiles(p)),
        "STOCK_MASTER": debian.POSTFIX_STOCK_MASTER,
        "ADMIN_SMTPD_CONF": f"{SASL_CONFIG_DIR}/smtpd.conf",
        # Where this suite's smtpd really reads smtpd.conf, if not from our directory.
        "SASL_LINK": (f"{debian.SASL_CONFIG_DIR_FIXED[p.base.suite]}/smtpd.conf"
                      if p.sasl is not None and p.base.suite in debian.SASL_CONFIG_DIR_FIXED
                      else ""),
    }


SCRIPT_NAMES = ("config", "preinst", "postinst", "prerm", "postrm")


def maintainer_scripts(values: dict[str, str]) -> dict[str, bytes]:
    functions = fill(template("scripts/functions.sh"), values).rstrip("\n")
    out = {}
    for name in SCRIPT_NAMES:
        text = template(f"scripts/{name}").replace("@FUNCTIONS@", functions)
        out[name] = fill(text, values).encode()
    return out


def debconf_templates(values: dict[str, str]) -> bytes:
    return fill(template("files/templates"), values).encode()


def lintian_overrides(p: Profile) -> str:
    """Each override with the reason it is kept (issue #4: no unexplained warning)."""
    pkg = deb_output(p).package
    out = [
        "# Generated packages are built from a profile, never uploaded to Debian: there is",
        "# no ITP bug to close.",
        f"{pkg}: initial-upload-closes-no-bugs [*]",
        "# The question depends on the Postfix configuration found once dependencies",
        "# are configured; the config script may run (dpkg-preconfigure) before Postfix",
        "# is even installed, so the postinst asks it, and only if there is a conflict.",
        f"{pkg}: postinst-uses-db-input [postinst:*]",
    ]
    if uses_saslauthd(p):
        out += [
            "# systemd only: the saslauthd instance is a unit of this package; there",
            "# is no sysvinit support (relaykit(7) says what to run by hand without systemd).",
            f"{pkg}: package-supports-alternative-init-but-no-init.d-script [*]",
        ]
    return "\n".join(out) + "\n"


def contents(p: Profile, rendered: Rendered, inputs: BuildInputs,
             static_rootfs: Path) -> DebContents:
    values = script_values(p)
    conf, dirs = config_files(p)
    files = conf + helper_files(p, static_rootfs, values) + postconf_data(p, rendered)
    files += doc_files(p, inputs, values)
    files.append(DebFile(f"/usr/share/lintian/overrides/{deb_output(p).package}",
                         lintian_overrides(p).encode()))
    files.sort(key=lambda f: f.path)
    dirset = all_dirs(files, dirs)
    control = {
        "control": control_file(p, files, dirset).encode(),
        "conffiles": "".join(f"{f.path}\n" for f in files if f.conffile).encode(),
        "md5sums": md5sums(files).encode(),
        "templates": debconf_templates(values),
        **maintainer_scripts(values),
    }
    return DebContents(tuple(files), tuple(sorted(dirs)), control)
