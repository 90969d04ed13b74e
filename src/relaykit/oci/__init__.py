"""Daemonless, reproducible OCI image build: cached Debian base + rendered overlay."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from relaykit.oci._tar import LayerBlob
from relaykit.oci.base import (
    DEFAULT_EXCLUDES,
    REQUIRED_PACKAGES,
    BaseLayer,
    BaseSpec,
    build_base,
    cache_key,
    default_cache_dir,
)
from relaykit.oci.image import Attachment, ImagePlan, ImageRecord, ImageSpec, write_image
from relaykit.oci.layer import overlay_layer
from relaykit.render.tree import Tree
from relaykit.ui import Log

AttachFor = Callable[[BaseLayer, ImagePlan], Sequence[Attachment]]


BASE_LAYER_KEY = "io.relaykit.base.layer.digest"
BASE_LOCK_KEY = "io.relaykit.base.lock.sha256"


def with_base_annotations(image: ImageSpec, base: BaseLayer) -> ImageSpec:
    """Name the base the image sits on. OCI's image.base.digest means a base *image*
    manifest a registry serves; relaykit's base is a cached layer, so its own keys say
    which layer and which package lock."""
    extra = {BASE_LAYER_KEY: base.blob.digest}
    if base.spec.lock is not None:
        extra[BASE_LOCK_KEY] = hashlib.sha256(base.spec.lock.text().encode()).hexdigest()

    def merge(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({**dict(pairs), **extra}.items()))

    return dataclasses.replace(image, annotations=merge(image.annotations),
                               labels=merge(image.labels))


def build_image(*, base: BaseSpec, overlay: Tree, image: ImageSpec, out: Path,
                cache_dir: Path, refresh: bool = False, log: Log = print,
                attach: AttachFor | None = None) -> ImageRecord:
    """Base layer (cached) + overlay layer + image archive at out.

    attach(base layer, planned image) returns the artifacts (SBOMs, provenance) to store
    as referrers of the image."""
    base_layer = build_base(base, cache_dir, refresh=refresh, log=log)
    image = with_base_annotations(image, base_layer)
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
