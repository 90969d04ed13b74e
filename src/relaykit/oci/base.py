"""The base layer: a Debian root built by mmdebstrap, made reproducible and cached.

mmdebstrap writes the rootfs as a tar on stdout; we re-emit it as a deterministic
gzip layer in one streaming pass (memory does not grow with the rootfs), dropping
files that carry build-host traces or differ between two identical builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.oci import lock as locking
from relaykit.oci._tar import LayerBlob, Member, order_key, write_layer
from relaykit.oci.lock import Lock, LockedDeb
from relaykit.oci.sbom import DpkgPackage, PackageFacts
from relaykit.paths import cache_dir
from relaykit.ui import Log, complete_step

FORMAT_VERSION = 3  # bump when the post-processing changes: it invalidates every cache key
SUPPORTED_SUITES = tuple(debian.SUITES)
REQUIRED_PACKAGES = debian.RELAY_PACKAGES

# dpkg filters (last match wins): no docs, man pages, info, translations or lintian
# overrides; keep the copyright files (licence obligations) and locale.alias.
DEFAULT_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)

# Files removed from the rootfs (paths without the leading slash), and why:
_DROP_FILES = frozenset({
    "etc/hostname", "etc/mailname",  # build host name; the entrypoint writes them at start
    "etc/resolv.conf",  # the build host's resolver; the runtime mounts its own
    "etc/postfix/main.cf",  # postinst writes myhostname = <build host>; the overlay ships it
    "etc/aliases.db", "etc/sasldb2",  # Berkeley DB: differ on every build; made at start
    "etc/apt/sources.list",  # names the build mirror
    "etc/ssl/private/ssl-cert-snakeoil.key",  # a private key shared by every image is a defect
    "etc/ssl/certs/ssl-cert-snakeoil.pem",
    "var/cache/ldconfig/aux-cache",  # ldconfig's cache of build-time inode data
})
# Files (not directories) under these trees are dropped: apt lists, caches, logs,
# mirror-naming deb822 sources.
_DROP_FILES_UNDER = ("var/lib/apt/lists/", "var/cache/apt/", "var/log/", "etc/apt/sources.list.d/")
_DROP_SUFFIX_UNDER = (("var/cache/debconf/", "-old"),)  # debconf's backups of its own db
_SNAKEOIL = "ssl-cert-snakeoil.pem"

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")
_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FILTER_RE = re.compile(r"^path-(exclude|include)=/\S+$")


@dataclass(frozen=True)
class BaseSpec:
    suite: str  # a name in relaykit.debian.SUITES
    architecture: str  # dpkg architecture, e.g. "amd64"
    packages: tuple[str, ...]
    mirror: str | None  # None = mmdebstrap's default mirror
    epoch: int  # SOURCE_DATE_EPOCH
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES  # dpkg path-exclude/path-include filters
    # Packages whose files are removed after the install (dpkg status kept): tools the
    # relay never runs.  See relaykit.debian.RUNTIME_DROP_PACKAGES.
    drop_packages: tuple[str, ...] = ()
    # The lock the base is built from (exact .debs, no mirror asked); None: unpinned, the
    # mirror's current versions.
    lock: Lock | None = None

    def __post_init__(self) -> None:
        # Everything here ends up on mmdebstrap's command line: refuse option injection.
        if self.suite not in SUPPORTED_SUITES:
            raise RelaykitError(f"unsupported Debian suite {self.suite!r}",
                                hint="use one of: " + ", ".join(SUPPORTED_SUITES))
        if not _ARCH_RE.match(self.architecture):
            raise RelaykitError(f"bad dpkg architecture {self.architecture!r}")
        bad = [p for p in (*self.packages, *self.drop_packages) if not _PACKAGE_RE.match(p)]
        if bad:
            raise RelaykitError(f"bad package name(s): {', '.join(bad)}")
        if kept := sorted(set(self.drop_packages) & set(REQUIRED_PACKAGES)):
            raise RelaykitError(f"cannot drop packages the relay runs: {', '.join(kept)}")
        missing = [p for p in REQUIRED_PACKAGES if p not in self.packages]
        if missing:
            raise RelaykitError(f"base packages lack {', '.join(missing)}",
                                hint="start from relaykit.oci.base.REQUIRED_PACKAGES")
        if self.mirror is not None and (not self.mirror or self.mirror.startswith("-")):
            raise RelaykitError(f"bad mirror {self.mirror!r}")
        bad = [x for x in self.excludes if not _FILTER_RE.match(x)]
        if bad:
            raise RelaykitError(f"bad dpkg filter(s): {', '.join(bad)}",
                                hint="write path-exclude=/glob or path-include=/glob")
        if self.epoch < 0:
            raise RelaykitError("SOURCE_DATE_EPOCH must not be negative")
        if self.lock is not None:
            self._check_lock(self.lock)

    def _check_lock(self, lock: Lock) -> None:
        if (lock.suite, lock.architecture) != (self.suite, self.architecture):
            raise RelaykitError(
                f"the lock is for {lock.suite}/{lock.architecture}, the base for "
                f"{self.suite}/{self.architecture}")
        if missing := lock.covers(self.packages):
            raise RelaykitError(
                f"locks/{self.suite}-{self.architecture}.lock does not cover "
                f"{', '.join(missing)}",
                hint=f"run: invoke lock --suite {self.suite} --architecture "
                f"{self.architecture} --add {','.join(missing)}")

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BaseLayer:
    blob: LayerBlob
    key: str
    spec: BaseSpec
    users: dict[str, int]
    groups: dict[str, int]
    cached: bool  # True when reused from the cache
    packages: tuple[DpkgPackage, ...] = ()  # the dpkg status of the root, with licences


def cache_key(spec: BaseSpec) -> str:
    """sha256 of a canonical JSON of every spec field plus the post-processing version."""
    doc = {"format": FORMAT_VERSION, **spec.to_json()}
    doc["packages"] = sorted(set(spec.packages))  # install order does not change the root
    if spec.lock is not None:
        # Pinned: the locked .debs (versions and digests) decide the root, not the mirror.
        doc["lock"] = spec.lock.to_json()
        doc["mirror"] = None
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_dir() -> Path:
    return cache_dir()


# --- rootfs post-processing ---------------------------------------------------------

def _dropped(info: tarfile.TarInfo, name: str) -> bool:
    if name in ("", ".") or info.ischr() or info.isblk() or info.isfifo():
        return True  # the root itself and device nodes: the runtime provides /dev
    if name in _DROP_FILES:
        return True
    if info.issym() and info.linkname.rsplit("/", 1)[-1] == _SNAKEOIL:
        return True  # the c_rehash symlink to the snakeoil cert
    if info.isdir():
        return False
    if name.startswith(_DROP_FILES_UNDER):
        return True
    return any(name.startswith(d) and name.endswith(s) for d, s in _DROP_SUFFIX_UNDER)


def _parse_ids(data: bytes) -> dict[str, int]:
    """name -> id from /etc/passwd or /etc/group (third field)."""
    table: dict[str, int] = {}
    for line in data.decode().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            table[fields[0]] = int(fields[2])
    return table


class _RootfsFilter:
    """Turns mmdebstrap's tar stream into layer members, recording the id tables."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.groups: dict[str, int] = {}
        self.dropped: list[str] = []
        self.facts = PackageFacts()  # dpkg status and copyright files, for the SBOM

    def members(self, tar: tarfile.TarFile) -> Iterator[Member]:
        gone: set[str] = set()
        for info in tar:
            name = info.name.removeprefix("./").strip("/")
            target = info.linkname.removeprefix("./") if info.islnk() else ""
            if _dropped(info, name) or target in gone:
                if info.isreg():
                    gone.add(name)
                if name not in ("", ".") and not (info.ischr() or info.isblk()):
                    self.dropped.append(name)
                continue
            yield info, self._data(tar, info, name)

    def _data(self, tar: tarfile.TarFile, info: tarfile.TarInfo, name: str) -> IO[bytes] | None:
        if not info.isreg():
            return None
        data = tar.extractfile(info)
        if name in ("etc/passwd", "etc/group") and data is not None:
            raw = data.read()  # a few KB: read it to learn the numeric ids
            (self.users if name == "etc/passwd" else self.groups).update(_parse_ids(raw))
            return io.BytesIO(raw)
        if self.facts.wants(name) and data is not None:
            raw = data.read()  # the status is ~100 KB, a copyright file a few KB
            self.facts.take(name, raw)
            return io.BytesIO(raw)
        return data


def _canonical_order(members: Iterable[Member]) -> Iterator[Member]:
    """Put out-of-order data-less members (mmdebstrap emits /dev first) in place.

    Only entries without data (directories, links) are held back, in a small heap,
    until the next file that sorts after them; file data is never buffered.
    """
    pending: list[tuple[tuple[str, ...], int, Member]] = []
    for seq, member in enumerate(members):
        key = order_key(member[0].name.removeprefix("./"))
        if member[1] is None:
            heapq.heappush(pending, (key, seq, member))
            continue
        while pending and pending[0][0] < key:
            yield heapq.heappop(pending)[2]
        yield member
    while pending:
        yield heapq.heappop(pending)[2]


# --- mmdebstrap ----------------------------------------------------------------------

# Removes the files of the packages listed (validated names), after the install: regular
# files and symlinks from each package's dpkg file list, except the dpkg database itself
# and copyright files.  mmdebstrap runs a hook through the shell with the root as $1.
# It moves start-stop-daemon to .REAL during the build and back when done: drop that too.
_DROP_HOOK = """\
set -eu
for pkg in {packages}; do
    for list in "$1/var/lib/dpkg/info/$pkg.list" "$1/var/lib/dpkg/info/$pkg":*.list; do
        [ -f "$list" ] || continue
        while IFS= read -r path; do
            case $path in /var/lib/dpkg/*|/usr/share/doc/*/copyright) continue ;; esac
            if [ -L "$1$path" ] || [ -f "$1$path" ]; then rm -f "$1$path"; fi
            rm -f "$1$path.REAL"
        done < "$list"
    done
done
"""


def _drop_hook(packages: tuple[str, ...]) -> str:
    return "--customize-hook=" + _DROP_HOOK.format(packages=" ".join(sorted(packages)))


def _mmdebstrap_argv(spec: BaseSpec, mirror: str | None) -> list[str]:
    argv = [
        "mmdebstrap", "--variant=apt", f"--architectures={spec.architecture}",
        "--include=" + ",".join(spec.packages),
        *[f"--dpkgopt={x}" for x in spec.excludes],
        *([_drop_hook(spec.drop_packages)] if spec.drop_packages else []),
        "--format=tar", spec.suite, "-",  # "-": the tar goes to stdout, no temp rootfs file
    ]
    if mirror is not None:
        argv.append(mirror)
    return argv


def _mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        raise RelaykitError("mmdebstrap is not installed", hint="apt-get install mmdebstrap")


def _stream_build(spec: BaseSpec, mirror: str | None, work: Path,
                  log: Log) -> tuple[LayerBlob, _RootfsFilter]:
    _mmdebstrap()
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(spec.epoch)}
    errlog = work / "mmdebstrap.log"
    filt = _RootfsFilter()
    with errlog.open("wb") as err, subprocess.Popen(
        _mmdebstrap_argv(spec, mirror), stdout=subprocess.PIPE, stderr=err, env=env
    ) as proc:
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                members = _canonical_order(filt.members(tar))
                blob = write_layer(work / "layer.tar.gz", members, spec.epoch)
            while proc.stdout.read(1 << 16):  # drain the end-of-archive padding
                pass
        except BaseException:
            proc.terminate()  # SIGTERM lets mmdebstrap remove its temporary root
            raise
        code = proc.wait()
    if code != 0:
        tail = errlog.read_text(errors="replace").splitlines()[-15:]
        raise RelaykitError(f"mmdebstrap failed with exit code {code}:\n" + "\n".join(tail),
                            hint="check the suite, the package names and the mirror")
    if "postfix" not in filt.users:
        raise RelaykitError("the base rootfs has no postfix user in /etc/passwd")
    return blob, filt


def _write_meta(path: Path, key: str, spec: BaseSpec, blob: LayerBlob,
                filt: _RootfsFilter) -> None:
    meta = {
        "format": FORMAT_VERSION, "key": key, **blob.to_json(), "spec": spec.to_json(),
        "users": dict(sorted(filt.users.items())), "groups": dict(sorted(filt.groups.items())),
        "dropped": filt.dropped,
        "packages": [p.to_json() for p in filt.facts.packages()],
    }
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _load(entry: Path, spec: BaseSpec, key: str) -> BaseLayer | None:
    """The cached layer, or None when missing or inconsistent."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        layer = entry / "layer.tar.gz"
        if meta.get("format") != FORMAT_VERSION or layer.stat().st_size != meta["size"]:
            return None
        blob = LayerBlob(layer, meta["digest"], meta["diff_id"], meta["size"])
        packages = tuple(DpkgPackage.from_json(p) for p in meta["packages"])
        return BaseLayer(blob, key, spec, meta["users"], meta["groups"], cached=True,
                         packages=packages)
    except (OSError, ValueError, KeyError):
        return None


def _publish(tmp: Path, entry: Path) -> None:
    """Atomically move a finished build into place, replacing an older entry."""
    old = None
    if entry.exists():
        old = entry.with_name(f".old-{entry.name}-{os.getpid()}")
        os.rename(entry, old)
    os.rename(tmp, entry)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_base(spec: BaseSpec, cache_dir: Path, refresh: bool = False,
               log: Log = print) -> BaseLayer:
    """The base layer for spec: from the cache, or built with mmdebstrap and cached."""
    key = cache_key(spec)
    entry = cache_dir / "base" / key
    if not refresh and (hit := _load(entry, spec, key)) is not None:
        log(f"base {spec.suite}/{spec.architecture}: cached {hit.blob.digest[:19]}")
        return hit
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=entry.parent))
    try:
        start = time.monotonic()
        mirror = spec.mirror
        if spec.lock is not None:
            ensure_debs(spec, cache_dir, log)
            repo = locking.flat_repository(spec.lock, cache_dir, tmp / "repo")
            mirror = locking.repository_line(repo)
            log(f"base {spec.suite}/{spec.architecture}: pinned by the lock, "
                f"{len(spec.lock.packages)} kept .debs, no network")
        else:
            log(f"base {spec.suite}/{spec.architecture}: no lock, the mirror's current "
                f"versions (run: invoke lock --suite {spec.suite} --architecture "
                f"{spec.architecture})")
        with complete_step(f"building base {spec.suite}/{spec.architecture} (mmdebstrap)"):
            blob, filt = _stream_build(spec, mirror, tmp, log)
        (tmp / "mmdebstrap.log").unlink()
        shutil.rmtree(tmp / "repo", ignore_errors=True)
        if spec.lock is not None:
            _check_installed(spec.lock, filt.facts.packages())
        _write_meta(tmp / "meta.json", key, spec, blob, filt)
        _publish(tmp, entry)
        log(f"base {spec.suite}/{spec.architecture}: {blob.size / 1e6:.1f} MB "
            f"{blob.digest[:19]} in {time.monotonic() - start:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    built = _load(entry, spec, key)
    if built is None:
        raise RelaykitError(f"cache entry {entry} unreadable right after writing it")
    return dataclasses.replace(built, cached=False)


# --- kept .debs ----------------------------------------------------------------------

def _check_installed(lock: Lock, installed: tuple[DpkgPackage, ...]) -> None:
    """Every installed package must be the locked one (the flat repo makes it so; this
    catches a lock that does not close over the dependencies)."""
    locked = {(d.name, d.version) for d in lock.packages}
    stray = sorted(f"{p.name} {p.version}" for p in installed if (p.name, p.version)
                   not in locked)
    if stray:
        raise RelaykitError(f"installed but not locked: {', '.join(stray)}",
                            hint="refresh the lock: invoke lock")


def fetch_debs(suite: str, architecture: str, packages: tuple[str, ...], mirror: str | None,
               cache_dir: Path, log: Log, *, resolve: bool = True) -> list[LockedDeb]:
    """Keep the .debs of packages (and their dependencies) from the mirror.

    resolve: a throwaway install (variant apt, no output) decides what the base holds,
    as a build would; its archives are synced out, so what it installed is exactly what
    it kept.  Otherwise (pinned versions of a lock) the packages are only downloaded
    and extracted: no maintainer script runs, so a foreign architecture needs no qemu.
    """
    _mmdebstrap()
    store = locking.deb_store(cache_dir)
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=store) as work:
        out = Path(work) / "archives"
        out.mkdir()
        sync = f"sync-out /var/cache/apt/archives {out}"
        mode = (["--variant=apt", "--skip=essential/unlink", f"--customize-hook={sync}"]
                if resolve else ["--variant=extract", f"--extract-hook={sync}"])
        argv = ["mmdebstrap", *mode, f"--architectures={architecture}",
                "--include=" + ",".join(packages), "--format=null", suite, "/dev/null"]
        if mirror is not None:
            argv.append(mirror)
        log(f"base {suite}/{architecture}: fetching {len(packages)} package(s) "
            f"{'and their dependencies ' if resolve else ''}from the mirror")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.splitlines()[-8:])
            raise RelaykitError(f"fetching packages failed (mmdebstrap {proc.returncode}):\n"
                                f"{tail}",
                                hint="a pinned version may have left the mirror: move the "
                                "lock with `invoke lock`; else check the mirror")
        return locking.keep_debs(out, cache_dir)


def ensure_debs(spec: BaseSpec, cache_dir: Path, log: Log) -> None:
    """Fetch the locked .debs not kept yet, pinned to their versions; refuse others."""
    assert spec.lock is not None
    missing = locking.missing_debs(spec.lock, cache_dir)
    if not missing:
        return
    fetch_debs(spec.suite, spec.architecture, tuple(d.pin for d in missing), spec.mirror,
               cache_dir, log, resolve=False)
    if still := locking.missing_debs(spec.lock, cache_dir):
        names = ", ".join(f"{d.name} {d.version}" for d in still[:10])
        raise RelaykitError(
            f"the mirror's .debs differ from the lock ({len(still)}): {names}",
            hint="a rebuilt upload under the same version, or a different mirror: "
            "check it, then refresh the lock with `invoke lock`")


def lock_base(suite: str, architecture: str, packages: tuple[str, ...], mirror: str | None,
              cache_dir: Path, log: Log = print) -> Lock:
    """A new lock: what the mirror resolves packages to now (the .debs are kept)."""
    kept = fetch_debs(suite, architecture, packages, mirror, cache_dir, log)
    return Lock(suite, architecture, tuple(sorted(set(packages))), tuple(sorted(kept)))
