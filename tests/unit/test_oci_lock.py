"""The package lock: file format, errors, diff, cache key, the kept .deb store."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from relaykit import debian
from relaykit.errors import RelaykitError
from relaykit.oci.base import BaseSpec, cache_key
from relaykit.oci.lock import (
    Lock,
    LockedDeb,
    diff_locks,
    flat_repository,
    keep_debs,
    lock_path,
    missing_debs,
    parse_lock,
    read_lock,
    repository_line,
    write_lock,
)
from relaykit.paths import locks_dir

SHA = "a" * 64


def deb(name: str, version: str = "1.0-1", sha: str = SHA, arch: str = "amd64") -> LockedDeb:
    return LockedDeb(name, version, arch, sha, 1234)


LOCK = Lock("trixie", "amd64", ("postfix",),
            (deb("libc6", "2.41-12"), deb("postfix", "3.10.5-1~deb13u1")))


def test_text_round_trip_and_one_package_per_line(tmp_path: Path) -> None:
    path = tmp_path / "trixie-amd64.lock"
    write_lock(LOCK, path)
    assert read_lock(path) == LOCK
    lines = path.read_text().splitlines()
    assert [line for line in lines if '"name": "libc6"' in line] and len(lines) == 4
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(format=9), "format"),
    (lambda d: d.update(suite="sid"), "unsupported suite"),
    (lambda d: d["packages"][0].update(sha256="zz"), "packages[0]: sha256"),
    (lambda d: d["packages"][1].update(version="-1"), "packages[1]: version"),
    (lambda d: d["packages"][0].update(size=True), "packages[0]: size"),
    (lambda d: d["packages"].append(dict(d["packages"][0])), "locked twice: libc6"),
    (lambda d: d.update(requested=["exim4"]), "not among the locked packages: exim4"),
    (lambda d: d.update(packages=[]), "non-empty"),
])
def test_bad_lock_names_file_field_and_fix(mutate: object, message: str) -> None:
    doc = json.loads(LOCK.text())
    mutate(doc)  # type: ignore[operator]
    path = Path("locks/trixie-amd64.lock")
    with pytest.raises(RelaykitError) as info:
        parse_lock(path, json.dumps(doc))
    assert str(path) in info.value.message and message in info.value.message
    assert "invoke lock --suite trixie" in info.value.hint


def test_not_json_says_which_line() -> None:
    with pytest.raises(RelaykitError, match=r"line 2: not JSON"):
        parse_lock(Path("x.lock"), '{"format": 1,\n oops}')


def test_diff_reports_added_removed_changed_and_rebuilt() -> None:
    new = Lock("trixie", "amd64", ("postfix",), (
        deb("postfix", "3.10.6-1"), deb("libssl3t64", "3.5.1-1"),
        deb("libc6", "2.41-12", sha="b" * 64)))
    assert diff_locks(LOCK, new) == [
        "! libc6 2.41-12: same version, different .deb (rebuilt upload?)",
        "+ libssl3t64 3.5.1-1",
        "~ postfix 3.10.5-1~deb13u1 -> 3.10.6-1",
    ]
    assert diff_locks(None, LOCK) == ["+ libc6 2.41-12", "+ postfix 3.10.5-1~deb13u1"]
    assert diff_locks(LOCK, LOCK) == []


def test_epoch_written_as_apt_does() -> None:
    assert deb("bsdutils", "1:2.41-5").filename == "bsdutils_1%3a2.41-5_amd64.deb"


SPEC = BaseSpec("trixie", "amd64", debian.IMAGE_PACKAGES, None, 1)


def full_lock(**versions: str) -> Lock:
    return Lock("trixie", "amd64", debian.IMAGE_PACKAGES, tuple(sorted(
        deb(name, versions.get(name, "1.0")) for name in debian.IMAGE_PACKAGES)))


def test_cache_key_follows_locked_versions_not_the_mirror() -> None:
    pinned = dataclasses.replace(SPEC, lock=full_lock())
    assert cache_key(pinned) != cache_key(SPEC)
    assert cache_key(dataclasses.replace(pinned, lock=full_lock(postfix="2.0"))) \
        != cache_key(pinned)
    # Pinned: the repository is the kept .debs, whichever mirror fetched them.
    assert cache_key(dataclasses.replace(pinned, mirror="http://mirror.test/debian")) \
        == cache_key(pinned)


def test_spec_refuses_a_lock_that_does_not_fit() -> None:
    with pytest.raises(RelaykitError, match="lock is for trixie/amd64"):
        dataclasses.replace(SPEC, architecture="arm64", lock=full_lock())
    with pytest.raises(RelaykitError, match="does not cover rsyslog") as info:
        BaseSpec("trixie", "amd64", (*debian.IMAGE_PACKAGES, "rsyslog"), None, 1,
                 lock=full_lock())
    assert "--add rsyslog" in info.value.hint


def test_committed_locks_parse_and_cover_the_image_packages() -> None:
    paths = sorted(locks_dir().glob("*.lock"))
    assert lock_path("trixie", "amd64") in paths
    for path in paths:
        lock = read_lock(path)
        assert path.name == f"{lock.suite}-{lock.architecture}.lock"
        assert lock.covers(debian.IMAGE_PACKAGES) == []
        assert read_lock(path).text() == path.read_text()  # canonical as written


def make_deb(tmp: Path, name: str, version: str) -> Path:
    root = tmp / f"src-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDescription: test\n")
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/marker").write_text(name)
    out = tmp / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return out


@pytest.fixture
def kept(tmp_path: Path) -> tuple[Lock, Path]:
    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb missing (bootstrap installs dpkg-dev)")
    incoming = tmp_path / "in"
    incoming.mkdir()
    make_deb(incoming, "alpha", "1:1.0-1")
    make_deb(incoming, "beta", "2.0")
    cache = tmp_path / "cache"
    debs = keep_debs(incoming, cache)
    return Lock("trixie", "all", ("alpha",), tuple(sorted(debs))), cache


def test_kept_debs_are_content_addressed(kept: tuple[Lock, Path]) -> None:
    lock, cache = kept
    assert [(d.name, d.version, d.architecture) for d in lock.packages] == [
        ("alpha", "1:1.0-1", "all"), ("beta", "2.0", "all")]
    for d in lock.packages:
        assert (cache / "debs" / f"{d.sha256}.deb").stat().st_size == d.size
    assert missing_debs(lock, cache) == []
    gone = dataclasses.replace(lock.packages[0], sha256="c" * 64)
    assert missing_debs(dataclasses.replace(lock, packages=(gone,)), cache) == [gone]


def test_flat_repository_indexes_checked_debs(kept: tuple[Lock, Path], tmp_path: Path) -> None:
    lock, cache = kept
    repo = flat_repository(lock, cache, tmp_path / "repo")
    index = (repo / "Packages").read_text()
    assert "Filename: ./alpha_1%3a1.0-1_all.deb" in index
    assert f"SHA256: {lock.packages[1].sha256}" in index
    assert repository_line(repo) == f"deb [trusted=yes] copy://{repo.resolve()} ./"


def test_flat_repository_refuses_a_tampered_kept_deb(kept: tuple[Lock, Path],
                                                    tmp_path: Path) -> None:
    lock, cache = kept
    victim = cache / "debs" / f"{lock.packages[1].sha256}.deb"
    with victim.open("ab") as f:
        f.write(b"evil")
    with pytest.raises(RelaykitError, match="does not match its digest"):
        flat_repository(lock, cache, tmp_path / "repo")
    assert not victim.exists()  # removed, so the next build fetches it anew


def test_dropped_packages_change_the_cache_key_and_are_validated() -> None:
    from relaykit.oci.base import _mmdebstrap_argv

    lean = dataclasses.replace(SPEC, drop_packages=debian.RUNTIME_DROP_PACKAGES)
    assert cache_key(lean) != cache_key(SPEC)
    hook = [a for a in _mmdebstrap_argv(lean, None) if a.startswith("--customize-hook=")]
    assert len(hook) == 1 and "for pkg in apt debian-archive-keyring dpkg" in hook[0]
    assert not [a for a in _mmdebstrap_argv(SPEC, None) if "hook" in a]
    with pytest.raises(RelaykitError, match="bad package name"):
        dataclasses.replace(SPEC, drop_packages=("apt; rm -rf /",))
    with pytest.raises(RelaykitError, match="cannot drop packages the relay runs: postfix"):
        dataclasses.replace(SPEC, drop_packages=("postfix",))
