"""The image overlay: the rendered configuration plus relaykit's static files (rootfs/).

`invoke render` writes exactly this tree to build/<name>/rootfs/, and the OCI backend
packs exactly this tree as the image's top layer.
"""

from __future__ import annotations

from dataclasses import replace

from relaykit.paths import static_rootfs_dir
from relaykit.render.postfix import Rendered
from relaykit.render.tree import Entry, Tree, load_static_tree

# Everything the entrypoint writes lives below RUNTIME_DIR (a tmpfs under --read-only);
# the files other programs expect in /etc are links into it.
RUNTIME_DIR = "/run/relaykit"
RUNTIME_LINKS = (("/etc/sasldb2", f"{RUNTIME_DIR}/sasldb2"),
                 ("/etc/mailname", f"{RUNTIME_DIR}/mailname"))
# The entrypoint runs Postfix from a copy of /etc/postfix made at start; Postfix's
# set-gid programs accept another configuration only when the default one lists it.
MAIN_CF = "/etc/postfix/main.cf"
IMAGE_MAIN_CF_LINES = f"alternate_config_directories = {RUNTIME_DIR}/postfix\n"


def image_overlay(rendered: Rendered) -> Tree:
    tree = Tree()
    for entry in rendered.tree:
        if entry.path == MAIN_CF:
            entry = replace(entry, data=entry.data + IMAGE_MAIN_CF_LINES.encode())
        tree.add(entry)
    tree.merge(load_static_tree(static_rootfs_dir()))
    for link, target in RUNTIME_LINKS:
        tree.add(Entry(link, "symlink", 0o777, target=target))
    return tree
