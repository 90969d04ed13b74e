"""The image overlay: the rendered configuration plus relaykit's static files (rootfs/).

`invoke render` writes exactly this tree to build/<name>/rootfs/, and the OCI backend
packs exactly this tree as the image's top layer.
"""

from __future__ import annotations

from relaykit.paths import static_rootfs_dir
from relaykit.render.postfix import Rendered
from relaykit.render.tree import Tree, load_static_tree


def image_overlay(rendered: Rendered) -> Tree:
    tree = Tree()
    tree.merge(rendered.tree)
    tree.merge(load_static_tree(static_rootfs_dir()))
    return tree
