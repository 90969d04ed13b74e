"""Multi-platform images: one image per architecture under one OCI image index.

The archive's index.json names the image index (tagged); the index lists each
platform's manifest; each platform's SBOMs and provenance are referrers of that
platform's manifest.  Docker 20.10's `docker load` reads manifest.json, which can name
one image only: the build host's platform when it is among them, else the first.
Each platform's image is the very image a one-architecture build gives: reproducible
the same way, from its own cached base and lock.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.oci.base import BaseLayer, BaseSpec, build_base
from relaykit.oci.image import (
    MT_INDEX,
    Attachment,
    ImagePlan,
    ImageRecord,
    ImageSpec,
    Layout,
    Referrer,
    _canonical,
    _sha,
    plan_image,
    record_of,
    referrers_of,
    write_layout,
)
from relaykit.oci.layer import overlay_layer
from relaykit.render.tree import Tree
from relaykit.ui import Log

AttachFor = Callable[[BaseLayer, ImagePlan], Sequence[Attachment]]


@dataclass(frozen=True)
class IndexRecord:
    path: Path
    digest: str  # the image index: what the tag names in a registry
    size: int  # bytes of the index document
    architectures: tuple[str, ...]  # dpkg architectures, in platforms' order
    platforms: tuple[ImageRecord, ...]
    refs: tuple[str, ...]

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(a for p in self.platforms for a in p.attachments)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path), "digest": self.digest, "media_type": MT_INDEX,
            "refs": list(self.refs),
            "platforms": [{"architecture": arch, **p.to_json()} for arch, p in
                          zip(self.architectures, self.platforms, strict=True)],
        }


def image_index(plans: Sequence[ImagePlan]) -> bytes:
    return _canonical({"schemaVersion": 2, "mediaType": MT_INDEX,
                       "manifests": [plan.descriptor() for plan in plans]})


def build_index(*, bases: Sequence[BaseSpec], overlay: Tree, images: Sequence[ImageSpec],
                out: Path, cache_dir: Path, host: str, refresh: bool = False,
                log: Log = print, attach: AttachFor | None = None) -> IndexRecord:
    """One image per (base, image spec) pair, all under one image index at out."""
    from relaykit.oci import with_base_annotations

    if not images or len(bases) != len(images):
        raise RelaykitError("an image index needs one base per image")
    archs = [spec.architecture for spec in images]
    if len(set(archs)) != len(archs):
        raise RelaykitError(f"architectures repeated: {', '.join(archs)}")
    first = images[0]
    if any((s.name, s.tags, s.epoch) != (first.name, first.tags, first.epoch) for s in images):
        raise RelaykitError("every platform image needs the same name, tags and epoch")
    plans: list[ImagePlan] = []
    referrers: list[Referrer] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".relaykit-overlay-", dir=out.parent) as work:
        for base, image in zip(bases, images, strict=True):
            if base.architecture != image.architecture:
                raise RelaykitError(f"base {base.architecture} under image {image.architecture}")
            layer = build_base(base, cache_dir, refresh=refresh, log=log)
            image = with_base_annotations(image, layer)
            if not image.history:
                image = dataclasses.replace(image, history=(
                    f"relaykit base {base.suite}", f"relaykit overlay {image.name}"))
            blob = overlay_layer(overlay, layer.users, layer.groups, image.epoch,
                                 Path(work) / f"overlay-{image.architecture}.tar.gz")
            plan = plan_image(image, [layer.blob, blob])
            plans.append(plan)
            referrers += referrers_of(plan, attach(layer, plan) if attach else ())
        index = image_index(plans)
        docker = next((p for p in plans if p.spec.architecture == host), plans[0])
        write_layout(Layout(first.name, first.tags, first.epoch, tuple(plans), index,
                            tuple(referrers), docker), out)
    platforms = tuple(record_of(plan, out, [r for r in referrers if r.subject == plan.digest])
                      for plan in plans)
    record = IndexRecord(out, _sha(index), len(index), tuple(archs), platforms,
                         tuple(f"{first.name}:{t}" for t in first.tags))
    log(f"image index {record.refs[0]}: {record.digest} "
        f"({', '.join(archs)}; docker load takes {docker.spec.architecture}) -> {out}")
    return record
