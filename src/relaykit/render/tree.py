"""The rendered overlay: files at their real paths, with mode and owner.

A Tree is pure data (no disk I/O), so rendering is testable and byte-identical by
construction; `write_tree` is the one place that puts it on disk, through `confined`.
Owners are names (root, postfix, sasl): each artifact maps them to the ids of its
target system (the base rootfs for an image, the installed system for a package).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from relaykit.errors import RelaykitError


@dataclass(frozen=True)
class Entry:
    path: str  # absolute POSIX path inside the target root, e.g. "/etc/postfix/main.cf"
    kind: str  # "file" | "dir" | "symlink"
    mode: int
    owner: str = "root"
    group: str = "root"
    data: bytes = b""
    target: str = ""  # symlink target

    def __post_init__(self) -> None:
        if self.kind not in ("file", "dir", "symlink"):
            raise ValueError(f"bad entry kind {self.kind!r}")
        normal = str(PurePosixPath("/", self.path))
        if normal != self.path or ".." in PurePosixPath(self.path).parts:
            raise ValueError(f"entry path must be absolute and normalised: {self.path!r}")


@dataclass
class Tree:
    """An ordered set of entries keyed by path; parent directories are implied."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        old = self.entries.get(entry.path)
        if old is not None and old != entry and not (old.kind == entry.kind == "dir"):
            raise RelaykitError(f"two different files rendered at {entry.path}")
        self.entries[entry.path] = entry

    def file(self, path: str, data: str | bytes, mode: int = 0o644,
             owner: str = "root", group: str = "root") -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.add(Entry(path, "file", mode, owner, group, data=raw))

    def dir(self, path: str, mode: int = 0o755, owner: str = "root", group: str = "root") -> None:
        self.add(Entry(path, "dir", mode, owner, group))

    def merge(self, other: Tree) -> None:
        for entry in other:
            self.add(entry)

    def __iter__(self) -> Iterator[Entry]:
        """Entries sorted by path, each directory before its contents."""
        full = self.with_parents()
        return iter(full[p] for p in sorted(full))

    def with_parents(self) -> dict[str, Entry]:
        full = dict(self.entries)
        for path in self.entries:
            for parent in PurePosixPath(path).parents:
                p = str(parent)
                if p != "/" and p not in full:
                    full[p] = Entry(p, "dir", 0o755)
        return full

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def text(self, path: str) -> str:
        entry = self.entries[path]
        return entry.data.decode()


def confined(root: Path, path: str) -> Path:
    """Map an absolute in-root path to a host path, refusing escapes (.., symlinks out)."""
    root = root.resolve()
    candidate = root.joinpath(path.lstrip("/"))
    # Resolve the parent only: the entry itself may be a symlink we are about to write.
    parent = candidate.parent.resolve()
    if parent != root and root not in parent.parents:
        raise RelaykitError(f"refusing to write outside {root}: {path}")
    return parent / candidate.name


def write_tree(tree: Tree, root: Path) -> None:
    """Write entries under root with their modes (owners stay with the artifact writers)."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in tree:
        target = confined(root, entry.path)
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        elif entry.kind == "symlink":
            if target.is_symlink() or target.exists():
                target.unlink()
            os.symlink(entry.target, target)
            continue
        else:
            target.write_bytes(entry.data)
        os.chmod(target, entry.mode)


def load_static_tree(source: Path) -> Tree:
    """Read a static overlay directory (rootfs/) into a Tree; owner root, modes kept."""
    tree = Tree()
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
            host = base / name
            path = "/" + host.relative_to(source).as_posix()
            if host.is_symlink():
                tree.add(Entry(path, "symlink", 0o777, target=os.readlink(host)))
                continue
            mode = 0o755 if os.access(host, os.X_OK) else 0o644
            tree.file(path, host.read_bytes(), mode)
    return tree
