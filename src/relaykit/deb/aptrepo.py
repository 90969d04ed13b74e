"""A signed apt repository from built .debs: `Packages`, `Release`, `InRelease`.

Flat layout (Debian wiki "DebianRepository/Format", flat repository): everything in one
directory, which a client names with

    deb [signed-by=/usr/share/keyrings/KEYRING.gpg] URI ./

Indexes are written in Python (the fields of each package come from `dpkg-deb -f`);
signing is gpg's, with a key the user gives (fingerprint, key id or user id in the
keyring of GNUPGHOME or `gnupghome`).  Every index is written to a temporary directory
first, and the repository directory changes only once everything is signed.  Repeated
runs with the same packages and SOURCE_DATE_EPOCH give the same Packages and Release.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.ui import Log

ORIGIN = "relaykit"
KEYRING_NAME = "relaykit-archive-keyring.gpg"  # public key, for signed-by=
INDEXES = ("Packages", "Packages.gz")


@dataclass(frozen=True)
class RepoPackage:
    deb: Path
    fields: str  # the control paragraph as dpkg-deb prints it, no trailing newline
    package: str
    version: str


def _run(argv: Sequence[str], *, what: str, env: dict[str, str] | None = None,
         stdin: bytes | None = None) -> bytes:
    if shutil.which(argv[0]) is None:
        raise RelaykitError(f"{argv[0]} is not installed",
                            hint="apt-get install dpkg gpg" if argv[0] != "gpg" else
                            "apt-get install gpg")
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RelaykitError(f"{what} failed: {' / '.join(err[-3:])}")
    return proc.stdout


def read_package(deb: Path) -> RepoPackage:
    if not deb.is_file():
        raise RelaykitError(f"{deb}: no such package file", hint="invoke build --format deb")
    fields = _run(["dpkg-deb", "-f", str(deb)], what=f"reading {deb}").decode().rstrip("\n")
    values = {}
    for line in fields.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, _, value = line.partition(":")
            values[key] = value.strip()
    if "Package" not in values or "Version" not in values:
        raise RelaykitError(f"{deb}: control file has no Package or Version")
    return RepoPackage(deb, fields, values["Package"], values["Version"])


def _hashes(data: bytes) -> tuple[str, str]:
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def packages_index(pkgs: Sequence[RepoPackage]) -> str:
    """One paragraph per package: its control fields, then where and what it is."""
    paragraphs = []
    for pkg in sorted(pkgs, key=lambda p: (p.package, p.version, p.deb.name)):
        data = pkg.deb.read_bytes()
        md5, sha256 = _hashes(data)
        paragraphs.append(f"{pkg.fields}\nFilename: ./{pkg.deb.name}\nSize: {len(data)}\n"
                          f"MD5sum: {md5}\nSHA256: {sha256}\n")
    return "\n".join(paragraphs)


def release_file(indexes: dict[str, bytes], epoch: int, label: str) -> str:
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(epoch))
    out = [f"Origin: {ORIGIN}", f"Label: {label}", "Architectures: all",
           f"Date: {date}", "MD5Sum:"]
    out += [f" {_hashes(d)[0]} {len(d):>8} {name}" for name, d in sorted(indexes.items())]
    out.append("SHA256:")
    out += [f" {_hashes(d)[1]} {len(d):>8} {name}" for name, d in sorted(indexes.items())]
    return "\n".join(out) + "\n"


def _gpg(key: str, gnupghome: Path | None, *args: str, stdin: bytes) -> bytes:
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    argv = ["gpg", "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback",
            "--digest-algo", "SHA512", "--local-user", key, *args]
    return _run(argv, what=f"gpg signing with key {key!r}", env=env, stdin=stdin)


def _public_key(key: str, gnupghome: Path | None) -> bytes:
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    data = _run(["gpg", "--batch", "--export", key], what=f"exporting key {key!r}", env=env)
    if not data:
        raise RelaykitError(f"gpg has no key {key!r}",
                            hint="gpg --list-secret-keys; give its fingerprint with --key")
    return data


def write_repo(debs: Sequence[Path], out: Path, *, key: str, gnupghome: Path | None = None,
               epoch: int | None = None, label: str = "relaykit",
               log: Log = print) -> Path:
    """Add debs to the flat repository in out (the packages already there stay) and
    write its indexes, signed with key.  Returns the InRelease path."""
    if not key:
        raise RelaykitError("no signing key given",
                            hint="--key FINGERPRINT (gpg --list-secret-keys)")
    if not debs:
        raise RelaykitError("no .deb to publish", hint="invoke build --format deb first")
    if epoch is None:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    new = [read_package(d) for d in debs]
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _write(new, out, key=key, gnupghome=gnupghome, epoch=epoch, label=label,
                      log=log)
    except BaseException:
        if created:  # nothing half-written: a directory we made goes again
            shutil.rmtree(out, ignore_errors=True)
        raise


def _write(new: list[RepoPackage], out: Path, *, key: str, gnupghome: Path | None,
           epoch: int, label: str, log: Log) -> Path:
    for pkg in new:  # same name, same version, other bytes: apt would refuse it later
        there = out / pkg.deb.name
        if there.exists() and there.read_bytes() != pkg.deb.read_bytes():
            raise RelaykitError(f"{there} exists with other content",
                                hint="bump outputs.deb.version: a published version never changes")
    with tempfile.TemporaryDirectory(prefix=".relaykit-apt-", dir=out) as tmp:
        work = Path(tmp)
        for pkg in new:
            shutil.copyfile(pkg.deb, work / pkg.deb.name)
        names = {p.name for p in out.glob("*.deb")} | {p.deb.name for p in new}
        pkgs = [read_package(work / n if (work / n).exists() else out / n) for n in names]
        packages = packages_index(pkgs).encode()
        indexes = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
        release = release_file(indexes, epoch, label).encode()
        files = {**indexes, "Release": release,
                 "InRelease": _gpg(key, gnupghome, "--clearsign", stdin=release),
                 "Release.gpg": _gpg(key, gnupghome, "--armor", "--detach-sign",
                                     stdin=release),
                 KEYRING_NAME: _public_key(key, gnupghome)}
        for name, data in files.items():
            (work / name).write_bytes(data)
        # Packages first (a client reading the old InRelease still finds its files),
        # then the indexes, the signed Release last.
        for pkg in new:
            os.replace(work / pkg.deb.name, out / pkg.deb.name)
        for name in (*INDEXES, KEYRING_NAME, "Release", "Release.gpg", "InRelease"):
            os.replace(work / name, out / name)
    log(f"apt repository {out}: {len(pkgs)} package(s), signed by {key}")
    return out / "InRelease"


def built_debs(profiles: Sequence[str]) -> list[Path]:
    """The .deb each profile's last `invoke build --format deb` wrote."""
    from relaykit.deb.from_profile import deb_filename
    from relaykit.paths import build_dir
    from relaykit.profile.load import load_profile

    out = []
    for name in profiles:
        p = load_profile(name).profile
        deb = build_dir() / p.name / deb_filename(p)
        if not deb.is_file():
            raise RelaykitError(f"{deb} does not exist",
                                hint=f"invoke build --profile {name} --format deb")
        out.append(deb)
    return out
