"""The overlay layer is a deterministic tar of the Tree with numeric owners."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

import pytest

from relaykit.errors import RelaykitError
from relaykit.oci import overlay_layer
from relaykit.render.tree import Entry, Tree

USERS = {"root": 0, "postfix": 102}
GROUPS = {"root": 0, "postfix": 105, "sasl": 45}
EPOCH = 1_700_000_000


def sample_tree() -> Tree:
    tree = Tree()
    tree.dir("/etc/postfix", 0o755)
    tree.file("/etc/postfix/main.cf", "myhostname = relay.example\n")
    tree.file("/etc/postfix-extra/x", "x\n")  # sorts between /etc/postfix and its contents
    tree.file("/etc/postfix/sasl/smtpd.conf", "pwcheck_method: auxprop\n", 0o640, "root", "sasl")
    tree.dir("/var/spool/postfix/etc", 0o755, "root", "root")
    tree.file("/usr/local/bin/relaykit-entrypoint", "#!/bin/sh\n", 0o755)
    tree.add(Entry("/etc/postfix/link", "symlink", 0o777, target="main.cf"))
    tree.file("/var/lib/relaykit/state", "", 0o600, "postfix", "postfix")
    return tree


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getmembers()


def test_same_tree_same_digest(tmp_path: Path) -> None:
    a = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    b = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH, tmp_path / "b.tar.gz")
    assert a.digest == b.digest and a.diff_id == b.diff_id
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_digests_match_content(tmp_path: Path) -> None:
    blob = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    raw = blob.path.read_bytes()
    assert blob.size == len(raw)
    assert blob.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(raw)).hexdigest()


def test_gzip_header_has_no_mtime_or_name(tmp_path: Path) -> None:
    blob = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    raw = blob.path.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08 == 0  # no FNAME
    assert raw[4:8] == b"\0\0\0\0"  # mtime 0


def test_owners_modes_mtimes(tmp_path: Path) -> None:
    blob = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    by_name = {m.name: m for m in members(blob.path)}
    smtpd = by_name["etc/postfix/sasl/smtpd.conf"]
    assert (smtpd.uid, smtpd.gid, smtpd.mode) == (0, 45, 0o640)
    state = by_name["var/lib/relaykit/state"]
    assert (state.uid, state.gid, state.mode) == (102, 105, 0o600)
    assert by_name["usr/local/bin/relaykit-entrypoint"].mode == 0o755
    assert by_name["etc/postfix/link"].issym()
    assert by_name["etc/postfix/link"].linkname == "main.cf"
    assert by_name["etc/postfix"].isdir()
    for m in by_name.values():
        assert m.mtime == EPOCH
        assert m.uname == m.gname == ""


def test_members_sorted_parents_first(tmp_path: Path) -> None:
    names = [m.name for m in members(overlay_layer(sample_tree(), USERS, GROUPS, EPOCH,
                                                   tmp_path / "a.tar.gz").path)]
    assert names == sorted(names, key=lambda n: n.split("/"))
    seen: set[str] = set()
    for name in names:
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if parent in names:
            assert parent in seen, f"{name} before its parent"
        seen.add(name)


def test_implied_parents_are_not_written(tmp_path: Path) -> None:
    # An implied parent would reset the base's owner/mode of that directory.
    tree = Tree()
    tree.file("/etc/ssl/private/relay.key", "k", 0o600)
    names = [m.name for m in members(overlay_layer(tree, USERS, GROUPS, EPOCH,
                                                   tmp_path / "a.tar.gz").path)]
    assert names == ["etc/ssl/private/relay.key"]


def test_unknown_owner_is_an_error(tmp_path: Path) -> None:
    tree = Tree()
    tree.file("/etc/x", "x", owner="nobody-here")
    with pytest.raises(RelaykitError, match="nobody-here"):
        overlay_layer(tree, USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    tree = Tree()
    tree.file("/etc/x", "x", group="nogroup-here")
    with pytest.raises(RelaykitError, match="nogroup-here"):
        overlay_layer(tree, USERS, GROUPS, EPOCH, tmp_path / "b.tar.gz")


def test_content_change_changes_digest(tmp_path: Path) -> None:
    tree = sample_tree()
    a = overlay_layer(tree, USERS, GROUPS, EPOCH, tmp_path / "a.tar.gz")
    tree.entries["/etc/postfix/main.cf"] = Entry("/etc/postfix/main.cf", "file", 0o644,
                                                 data=b"changed\n")
    b = overlay_layer(tree, USERS, GROUPS, EPOCH, tmp_path / "b.tar.gz")
    c = overlay_layer(sample_tree(), USERS, GROUPS, EPOCH + 1, tmp_path / "c.tar.gz")
    assert len({a.digest, b.digest, c.digest}) == 3
