"""Daemonless, reproducible OCI image build: cached Debian base + rendered overlay."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from relaykit.oci._tar import LayerBlob
from relaykit.oci.base import (
    DEFAULT_EXCLUDES,
    REQUIRED_PACKAGES,
    BaseLayer,
    BaseSpec,
    Log,
    build_base,
    cache_key,
    default_cache_dir,
)
from relaykit.oci.image import Attachment, ImagePlan, ImageRecord, ImageSpec, write_image
from relaykit.oci.layer import overlay_layer
from relaykit.render.tree import Tree

AttachFor = Callable[[BaseLayer, ImagePlan], Sequence[Attachment]]


def build_image(*, base: BaseSpec, overlay: Tree, image: ImageSpec, out: Path,
                cache_dir: Path, refresh: bool = False, log: Log = print,
                attach: AttachFor | None = None) -> ImageRecord:
    """Base layer (cached) + overlay layer + image archive at out.

    attach(base layer, planned image) returns the artifacts (SBOMs, provenance) to store
    as referrers of the image."""
    base_layer = build_base(base, cache_dir, refresh=refresh, log=log)
    if not image.history:
        image = dataclasses.replace(image, history=(
            f"relaykit base {base.suite}", f"relaykit overlay {image.name}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    # The overlay blob is cheap to remake: it lives only until the archive holds a copy.
    with tempfile.TemporaryDirectory(prefix=".relaykit-overlay-", dir=out.parent) as work:
        blob = overlay_layer(overlay, base_layer.users, base_layer.groups, image.epoch,
                             Path(work) / "overlay.tar.gz")
        record = write_image(image, [base_layer.blob, blob], out,
                             (lambda plan: attach(base_layer, plan)) if attach else None)
    log(f"image {record.refs[0]}: {record.digest} ({record.size / 1e6:.1f} MB) -> {out}")
    return record


__all__ = [
    "DEFAULT_EXCLUDES", "REQUIRED_PACKAGES", "Attachment", "BaseLayer", "BaseSpec",
    "ImagePlan", "ImageRecord",
    "ImageSpec", "LayerBlob", "build_base", "build_image", "cache_key", "default_cache_dir",
    "overlay_layer", "write_image",
]
