"""build_base without Debian: a fake mmdebstrap on PATH feeds a crafted rootfs tar."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from relaykit.errors import RelaykitError
from relaykit.oci import REQUIRED_PACKAGES, BaseSpec, build_base, cache_key, default_cache_dir

EPOCH = 1_700_000_000
SPEC = BaseSpec("trixie", "amd64", REQUIRED_PACKAGES, None, EPOCH)

# Writes a rootfs tar to stdout in mmdebstrap's order (/dev first, then ".", then sorted),
# and records its argv and SOURCE_DATE_EPOCH. FAIL=1 makes it die half-way.
FAKE = r'''#!PYTHON
import io, json, os, sys, tarfile
open(os.environ["FAKE_LOG"], "a").write(json.dumps(
    {"argv": sys.argv[1:], "epoch": os.environ.get("SOURCE_DATE_EPOCH")}) + "\n")
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
def add(name, kind="f", data=b"", mode=0o644, uid=0, gid=0, link="", mtime=2_000_000_000):
    i = tarfile.TarInfo(name); i.mode, i.uid, i.gid, i.mtime = mode, uid, gid, mtime
    i.uname = "someone"; i.pax_headers = {"atime": "1.5"}
    i.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE,
              "h": tarfile.LNKTYPE, "c": tarfile.CHRTYPE}[kind]
    i.linkname, i.size = link, len(data)
    out.addfile(i, io.BytesIO(data) if kind == "f" else None)
add("./dev", "d"); add("./dev/null", "c", mode=0o666); add("./dev/fd", "l", link="/proc/self/fd")
add(".", "d")
add("./bin", "l", link="usr/bin")
add("./etc", "d"); add("./etc/aliases.db", data=os.urandom(8))
add("./etc/apt", "d"); add("./etc/apt/sources.list", data=b"deb http://mirror.invalid/ x main\n")
add("./etc/group", data=b"root:x:0:\nsasl:x:45:\npostdrop:x:103:\npostfix:x:101:\n")
add("./etc/hostname", data=b"buildhost\n")
add("./etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\npostfix:x:100:101::/x:/bin/false\n")
add("./etc/postfix", "d"); add("./etc/postfix/main.cf", data=b"myhostname = buildhost\n")
add("./etc/postfix/master.cf", data=b"smtp inet n - y - - smtpd\n")
add("./etc/ssl", "d"); add("./etc/ssl/certs", "d")
add("./etc/ssl/certs/62742064.0", "l", link="ssl-cert-snakeoil.pem")
add("./etc/ssl/certs/ssl-cert-snakeoil.pem", data=b"cert")
if os.environ.get("FAIL"):
    sys.stdout.flush(); sys.exit(3)
add("./usr", "d"); add("./usr/bin", "d"); add("./usr/bin/perl", data=b"perl", mode=0o755)
add("./usr/bin/perl5", "h", link="./usr/bin/perl")
add("./usr/sbin", "d"); add("./usr/sbin/postdrop", data=b"elf", mode=0o2555, gid=103)
add("./var", "d"); add("./var/log", "d"); add("./var/log/apt", "d")
add("./var/log/apt/history.log", data=b"Start-Date: now\n")
out.close()
'''


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "mmdebstrap"
    script.write_text(FAKE.replace("PYTHON", sys.executable))
    script.chmod(0o755)
    log = tmp_path / "fake.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def names(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_cleaned_ordered_normalised(fake: Path, tmp_path: Path) -> None:
    base = build_base(SPEC, tmp_path / "cache", log=lambda _: None)
    members = names(base.blob.path)
    assert list(members) == sorted(members, key=lambda n: n.split("/"))
    assert list(members)[:3] == ["bin", "dev", "dev/fd"]
    for gone in ("etc/aliases.db", "etc/apt/sources.list", "etc/hostname", "etc/postfix/main.cf",
                 "etc/ssl/certs/62742064.0", "etc/ssl/certs/ssl-cert-snakeoil.pem", "dev/null",
                 "var/log/apt/history.log", "."):
        assert gone not in members
    assert "var/log/apt" in members and "etc/postfix/master.cf" in members
    postdrop = members["usr/sbin/postdrop"]
    assert (postdrop.gid, postdrop.mode) == (103, 0o2555)
    assert members["usr/bin/perl5"].islnk() and members["usr/bin/perl5"].linkname == "usr/bin/perl"
    for m in members.values():
        assert m.mtime == EPOCH and m.uname == "" and "atime" not in m.pax_headers
    assert (base.users, base.groups["sasl"]) == ({"root": 0, "postfix": 100}, 45)
    raw = base.blob.path.read_bytes()
    assert base.blob.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert base.blob.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(raw)).hexdigest()


def test_mmdebstrap_arguments(fake: Path, tmp_path: Path) -> None:
    spec = BaseSpec("bookworm", "arm64", (*REQUIRED_PACKAGES, "less"), "http://m.invalid/d",
                    EPOCH)
    build_base(spec, tmp_path / "cache", log=lambda _: None)
    call = json.loads(fake.read_text())
    argv = call["argv"]
    assert call["epoch"] == str(EPOCH)
    assert "--variant=apt" in argv and "--architectures=arm64" in argv
    assert "--include=postfix,sasl2-bin,libsasl2-modules,ca-certificates,openssl,less" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert argv[-3:] == ["bookworm", "-", "http://m.invalid/d"]
    build_base(SPEC, tmp_path / "cache", log=lambda _: None)
    assert json.loads(fake.read_text().splitlines()[1])["argv"][-2:] == ["trixie", "-"]


def test_cache_hit_refresh_and_reproducible(fake: Path, tmp_path: Path) -> None:
    first = build_base(SPEC, tmp_path / "cache", log=lambda _: None)
    second = build_base(SPEC, tmp_path / "cache", log=lambda _: None)
    assert (first.cached, second.cached) == (False, True)
    assert len(fake.read_text().splitlines()) == 1  # no second mmdebstrap run
    third = build_base(SPEC, tmp_path / "cache", refresh=True, log=lambda _: None)
    assert not third.cached and third.blob.digest == first.blob.digest  # aliases.db was random
    entry = tmp_path / "cache" / "base" / cache_key(SPEC)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["groups"]["postdrop"] == 103 and meta["spec"]["suite"] == "trixie"


def test_failed_build_leaves_no_entry(fake: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(RelaykitError):
        build_base(SPEC, tmp_path / "cache", log=lambda _: None)
    assert list((tmp_path / "cache" / "base").iterdir()) == []


def test_cache_key() -> None:
    same = BaseSpec("trixie", "amd64", tuple(reversed(REQUIRED_PACKAGES)), None, EPOCH)
    assert cache_key(SPEC) == cache_key(same)
    others = [BaseSpec("bookworm", "amd64", REQUIRED_PACKAGES, None, EPOCH),
              BaseSpec("trixie", "arm64", REQUIRED_PACKAGES, None, EPOCH),
              BaseSpec("trixie", "amd64", REQUIRED_PACKAGES, "http://m.invalid/", EPOCH),
              BaseSpec("trixie", "amd64", REQUIRED_PACKAGES, None, EPOCH + 1),
              BaseSpec("trixie", "amd64", REQUIRED_PACKAGES, None, EPOCH, excludes=())]
    assert len({cache_key(s) for s in [SPEC, *others]}) == 6


@pytest.mark.parametrize("args", [
    ("sid", "amd64", REQUIRED_PACKAGES, None, EPOCH),
    ("trixie", "--evil", REQUIRED_PACKAGES, None, EPOCH),
    ("trixie", "amd64", ("postfix",), None, EPOCH),
    ("trixie", "amd64", (*REQUIRED_PACKAGES, "--hook=x"), None, EPOCH),
    ("trixie", "amd64", (*REQUIRED_PACKAGES, "a,b"), None, EPOCH),
    ("trixie", "amd64", REQUIRED_PACKAGES, "--mirror", EPOCH),
])
def test_bad_spec(args: tuple[str, str, tuple[str, ...], str | None, int]) -> None:
    with pytest.raises(RelaykitError):
        BaseSpec(*args)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELAYKIT_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("RELAYKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "relaykit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "relaykit"
