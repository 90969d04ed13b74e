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
from relaykit.render.postfix import MasterEntry, Rendered, config_tree

# Depends of every relaykit package (the list); postfix >= 3.6 for
# compatibility_level 3.6 and `-o { k = v }` in master.cf.
BASE_DEPENDS = ("postfix (>= 3.6)", "sasl2-bin", "libsasl2-modules", "openssl",
                "ca-certificates", "adduser")
# All relaykit packages ship /usr/lib/relaykit/common.sh and friends: only one at a time
# (Policy 7.6.2: Provides + Conflicts on one virtual package).
VIRTUAL = "relaykit-relay"
COMMON_SH = "/usr/lib/relaykit/common.sh"
SYNC_COMMAND = "/usr/sbin/relaykit-sasldb-sync"
SASLAUTHD_UNIT = "relaykit-saslauthd.service"
SYNC_PATH_UNIT = "relaykit-sasldb-sync.path"
SYNC_SERVICE_UNIT = "relaykit-sasldb-sync.service"


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


def postconf_data(p: Profile, rendered: Rendered) -> list[DebFile]:
    share = f"/usr/share/relaykit/{deb_output(p).package}"
    for key, value in rendered.main_settings:
        if "\n" in value or "\t" in value:
            raise RelaykitError(f"main.cf value of {key} holds a tab or newline")
    main = "".join(f"{k} = {v}\n" for k, v in rendered.main_settings)
    master = "".join(f"{e.key}\t{master_line(e)}\n" for e in rendered.listeners)
    return [DebFile(f"{share}/main.cf.edits", main.encode()),
            DebFile(f"{share}/master.cf.entries", master.encode())]


def config_files(p: Profile) -> tuple[list[DebFile], list[str]]:
    """The conffiles (from render.config_tree) and the empty directories to ship."""
    files: list[DebFile] = []
    dirs: list[str] = []
    tree = config_tree(p)
    for entry in tree:
        if entry.kind == "file":
            files.append(DebFile(entry.path, entry.data, entry.mode))
        elif entry.kind == "dir" and entry.path in tree.entries:
            dirs.append(entry.path)
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
        out.append(DebFile(SYNC_COMMAND, template("files/relaykit-sasldb-sync").encode(), 0o755))
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
    return [
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


def script_values(p: Profile) -> dict[str, str]:
    deb = deb_output(p)
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
    }


def maintainer_scripts(values: dict[str, str]) -> dict[str, bytes]:
    functions = fill(template("scripts/functions.sh"), values).rstrip("\n")
    out = {}
    for name in ("postinst", "prerm", "postrm"):
        text = template(f"scripts/{name}").replace("@FUNCTIONS@", functions)
        out[name] = fill(text, values).encode()
    return out


def lintian_overrides(p: Profile) -> str:
    """Each override with the reason it is kept (issue #4: no unexplained warning)."""
    pkg = deb_output(p).package
    out = [
        "# Generated packages are built from a profile, never uploaded to Debian: there is",
        "# no ITP bug to close.",
        f"{pkg}: initial-upload-closes-no-bugs [*]",
    ]
    if uses_saslauthd(p):
        out += [
            "# /etc/default/saslauthd-relaykit is an instance file of sasl2-bin's init script,",
            "# which starts one saslauthd per /etc/default/saslauthd-* file and requires",
            "# START=yes in it (see /etc/init.d/saslauthd); it is not an init script of ours.",
            f"{pkg}: init.d-script-should-always-start-service [etc/default/saslauthd-relaykit:*]",
            "# The saslauthd instance has no init.d script of this package: under sysvinit",
            "# sasl2-bin's own script starts it from the instance file above.",
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
        **maintainer_scripts(values),
    }
    return DebContents(tuple(files), tuple(sorted(dirs)), control)
