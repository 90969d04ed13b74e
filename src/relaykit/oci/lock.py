"""The package lock: exact versions and sha256 of every .deb in an image base.

A lock is committed per suite and architecture (locks/<suite>-<arch>.lock).  Builds
never ask a mirror which version to take: they build from a flat repository made of
the kept .debs whose digests the lock names (copy://, no network), so a rebuild gives
the same base, byte for byte, for as long as the kept .debs exist.  Missing .debs are
fetched once, pinned to the locked versions; a .deb whose digest differs is refused.

The kept .debs live in the cache, content-addressed: <cache>/debs/<sha256>.deb.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.paths import locks_dir

LOCK_FORMAT = 1

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
_ARCH_RE = re.compile(r"^[a-z0-9-]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class LockedDeb:
    name: str
    version: str
    architecture: str  # "all" or the dpkg architecture
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        """Debian's pool name; an epoch's colon is written %3a as apt does."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"

    @property
    def pin(self) -> str:
        return f"{self.name}={self.version}"


@dataclass(frozen=True)
class Lock:
    suite: str
    architecture: str
    requested: tuple[str, ...]  # what `invoke lock` resolved; builds may ask for a subset
    packages: tuple[LockedDeb, ...]

    def covers(self, packages: Iterable[str]) -> list[str]:
        """The requested packages this lock does not resolve (empty: it covers them)."""
        have = {d.name for d in self.packages}
        return sorted({p.split("=", 1)[0].split(":", 1)[0] for p in packages} - have)

    def to_json(self) -> dict[str, object]:
        return {
            "format": LOCK_FORMAT, "suite": self.suite, "architecture": self.architecture,
            "requested": sorted(self.requested),
            "packages": [{"name": d.name, "version": d.version, "architecture": d.architecture,
                          "sha256": d.sha256, "size": d.size} for d in sorted(self.packages)],
        }

    def text(self) -> str:
        """The file's bytes: one package per line, so a refresh diffs readably."""
        doc = self.to_json()
        packages = doc.pop("packages")
        assert isinstance(packages, list)
        head = json.dumps(doc, sort_keys=True)[:-1]
        rows = ",\n".join("  " + json.dumps(p, sort_keys=True) for p in packages)
        return f'{head}, "packages": [\n{rows}\n]}}\n'


def lock_path(suite: str, architecture: str, directory: Path | None = None) -> Path:
    return (directory or locks_dir()) / f"{suite}-{architecture}.lock"


def _bad(path: Path, where: str, what: str) -> RelaykitError:
    return RelaykitError(f"{path}: {where}: {what}",
                         hint="locks are written by `invoke lock`; rewrite this one with "
                         f"invoke lock --suite {path.stem.rsplit('-', 1)[0]}")


def _field(path: Path, where: str, entry: dict[str, object], key: str,
           pattern: re.Pattern[str]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise _bad(path, where, f"{key} {value!r} is missing or malformed")
    return value


def parse_lock(path: Path, text: str) -> Lock:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _bad(path, f"line {getattr(exc, 'lineno', '?')}", f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != LOCK_FORMAT:
        raise _bad(path, "format", f"expected lock format {LOCK_FORMAT}")
    suite = _field(path, "suite", doc, "suite", _NAME_RE)
    if suite not in debian.SUITES:
        raise _bad(path, "suite", f"unsupported suite {suite!r}")
    arch = _field(path, "architecture", doc, "architecture", _ARCH_RE)
    requested = doc.get("requested")
    if not isinstance(requested, list) or not all(
            isinstance(r, str) and _NAME_RE.match(r) for r in requested):
        raise _bad(path, "requested", "must be a list of package names")
    raw = doc.get("packages")
    if not isinstance(raw, list) or not raw:
        raise _bad(path, "packages", "must be a non-empty list")
    debs = []
    for i, entry in enumerate(raw):
        where = f"packages[{i}]"
        if not isinstance(entry, dict):
            raise _bad(path, where, "must be an object")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _bad(path, where, f"size {size!r} must be a positive integer")
        debs.append(LockedDeb(
            _field(path, where, entry, "name", _NAME_RE),
            _field(path, where, entry, "version", _VERSION_RE),
            _field(path, where, entry, "architecture", _ARCH_RE),
            _field(path, where, entry, "sha256", _SHA_RE), size))
    names = [d.name for d in debs]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise _bad(path, "packages", f"locked twice: {', '.join(dup)}")
    lock = Lock(suite, arch, tuple(sorted(requested)), tuple(sorted(debs)))
    if missing := lock.covers(lock.requested):
        raise _bad(path, "requested", f"not among the locked packages: {', '.join(missing)}")
    return lock


def read_lock(path: Path) -> Lock:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RelaykitError(f"{path}: cannot read the lock ({exc.strerror})") from None
    return parse_lock(path, text)


def find_lock(suite: str, architecture: str, directory: Path | None = None) -> Lock | None:
    path = lock_path(suite, architecture, directory)
    return read_lock(path) if path.exists() else None


def write_lock(lock: Lock, path: Path) -> None:
    """Atomic: a reader sees the old lock or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(lock.text())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def diff_locks(old: Lock | None, new: Lock) -> list[str]:
    """What a refresh changed, one line per package: + added, - removed, ~ version."""
    before = {d.name: d for d in (old.packages if old else ())}
    after = {d.name: d for d in new.packages}
    lines = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            lines.append(f"+ {name} {b.version}")
        elif b is None and a is not None:
            lines.append(f"- {name} {a.version}")
        elif a is not None and b is not None and a.version != b.version:
            lines.append(f"~ {name} {a.version} -> {b.version}")
        elif a is not None and b is not None and a.sha256 != b.sha256:
            lines.append(f"! {name} {b.version}: same version, different .deb (rebuilt upload?)")
    return lines


# --- the kept .deb store ---------------------------------------------------------------

def deb_store(cache_dir: Path) -> Path:
    return cache_dir / "debs"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _control(deb: Path) -> tuple[str, str, str]:
    try:
        out = subprocess.run(["dpkg-deb", "--show", "--showformat",
                              "${Package}\\t${Version}\\t${Architecture}", str(deb)],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RelaykitError(f"{deb}: not a readable .deb ({exc})",
                            hint="apt-get install dpkg-dev; remove the file to refetch it"
                            ) from None
    name, version, arch = out.split("\t")
    return name, version, arch


def keep_debs(source: Path, cache_dir: Path) -> list[LockedDeb]:
    """Move every .deb of source into the store; what they are, by their control data."""
    store = deb_store(cache_dir)
    store.mkdir(parents=True, exist_ok=True)
    kept = []
    for deb in sorted(source.glob("*.deb")):
        sha = sha256_file(deb)
        name, version, arch = _control(deb)
        kept.append(LockedDeb(name, version, arch, sha, deb.stat().st_size))
        target = store / f"{sha}.deb"
        if target.exists():
            continue
        if deb.stat().st_dev == store.stat().st_dev:
            os.replace(deb, target)  # atomic: a reader never sees a partial .deb
        else:
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(deb, tmp)
            os.replace(tmp, target)
    return kept


def missing_debs(lock: Lock, cache_dir: Path) -> list[LockedDeb]:
    store = deb_store(cache_dir)
    return [d for d in lock.packages if not (store / f"{d.sha256}.deb").is_file()]


def _paragraph(deb: Path, locked: LockedDeb) -> str:
    """The deb's control paragraph plus where and what it is, for a Packages index."""
    control = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True,
                             text=True, check=True).stdout.rstrip("\n")
    return (f"{control}\nFilename: ./{locked.filename}\nSize: {locked.size}\n"
            f"SHA256: {locked.sha256}\n")


def flat_repository(lock: Lock, cache_dir: Path, repo: Path) -> Path:
    """A flat apt repository of the locked .debs at repo, each checked against the lock.

    Unsigned ([trusted=yes] on the sources line): what authenticates the packages is the
    sha256 the committed lock names, checked here before apt sees a byte.
    """
    store = deb_store(cache_dir)
    repo.mkdir(parents=True, exist_ok=True)
    paragraphs = []
    for locked in lock.packages:
        kept = store / f"{locked.sha256}.deb"
        if sha256_file(kept) != locked.sha256:
            kept.unlink()
            raise RelaykitError(f"kept package {kept} does not match its digest: removed",
                                hint="build again to fetch it anew")
        target = repo / locked.filename
        try:
            os.link(kept, target)
        except OSError:
            shutil.copyfile(kept, target)
        paragraphs.append(_paragraph(target, locked))
    (repo / "Packages").write_text("\n".join(paragraphs))
    return repo


def repository_line(repo: Path) -> str:
    """mmdebstrap MIRROR argument for the flat repository: copied, not fetched."""
    return f"deb [trusted=yes] copy://{repo.resolve()} ./"
