"""The overlay layer: the rendered Tree as a deterministic image layer.

Owners in a Tree are names; an image layer needs the numeric ids of the base it
sits on, so the caller passes the base's user and group tables.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.oci._tar import LayerBlob, Member, order_key, write_layer
from relaykit.render.tree import Entry, Tree

_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def _lookup(table: dict[str, int], name: str, what: str, path: str) -> int:
    try:
        return table[name]
    except KeyError:
        raise RelaykitError(
            f"{path}: {what} {name!r} does not exist in the base image",
            hint=f"add the package that creates {what} {name!r} to the base, or fix the owner",
        ) from None


def _member(entry: Entry, users: dict[str, int], groups: dict[str, int], epoch: int) -> Member:
    info = tarfile.TarInfo(entry.path.lstrip("/"))
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode
    info.uid = _lookup(users, entry.owner, "user", entry.path)
    info.gid = _lookup(groups, entry.group, "group", entry.path)
    info.mtime = epoch
    if entry.kind == "symlink":
        info.linkname = entry.target
        return info, None
    if entry.kind == "dir":
        return info, None
    info.size = len(entry.data)
    return info, io.BytesIO(entry.data)


def _members(tree: Tree, users: dict[str, int], groups: dict[str, int],
             epoch: int) -> Iterator[Member]:
    # Only explicit entries: an implied parent (root 0755) would overwrite the base's
    # metadata of that directory, e.g. turn /etc/ssl/private 0710 into 0755. Runtimes
    # create a parent missing from every lower layer themselves.
    # Component order, not string order: a directory's contents follow it directly.
    for entry in sorted(tree.entries.values(), key=lambda e: order_key(e.path)):
        yield _member(entry, users, groups, epoch)


def overlay_layer(tree: Tree, users: dict[str, int], groups: dict[str, int], epoch: int,
                  out_path: Path) -> LayerBlob:
    """Write the tree as a gzip layer at out_path (owners mapped, mtime = epoch)."""
    return write_layer(out_path, _members(tree, users, groups, epoch), epoch)


__all__ = ["LayerBlob", "overlay_layer"]
