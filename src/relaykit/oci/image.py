"""The image archive: one tar that is both an OCI image layout and a `docker load` archive.

skopeo and umoci read the OCI layout (oci-layout, index.json, blobs/sha256/...);
Docker 20.10 ignores index.json and needs a Docker manifest.json beside it, whose
Config/Layers point into the same blobs, so nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.oci._tar import (
    LayerBlob,
    Member,
    closing_members,
    dir_member,
    file_member,
    write_archive,
)

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NS = 1_000_000_000

# dpkg architecture -> OCI (GOARCH, variant)
_OCI_ARCH = {
    "amd64": ("amd64", ""), "arm64": ("arm64", "v8"), "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"), "i386": ("386", ""), "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""), "riscv64": ("riscv64", ""), "mips64el": ("mips64le", ""),
}
_NAME_RE = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def oci_platform(dpkg_arch: str) -> dict[str, str]:
    try:
        arch, variant = _OCI_ARCH[dpkg_arch]
    except KeyError:
        raise RelaykitError(f"no OCI platform known for dpkg architecture {dpkg_arch!r}",
                            hint="use one of: " + ", ".join(sorted(_OCI_ARCH))) from None
    return {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}


def rfc3339(epoch: int) -> str:
    """OCI time stamps: UTC, whole seconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    name: str  # repository, e.g. "relaykit/relay"
    tags: tuple[str, ...]
    entrypoint: tuple[str, ...]
    epoch: int  # SOURCE_DATE_EPOCH: image "created" and every history entry
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[int, ...] = ()
    healthcheck: tuple[str, ...] = ()  # CMD form arguments; () = no healthcheck
    healthcheck_interval: int = 30  # seconds
    healthcheck_timeout: int = 10
    healthcheck_start_period: int = 15
    healthcheck_retries: int = 3
    stop_signal: str = "SIGTERM"
    annotations: tuple[tuple[str, str], ...] = ()  # org.opencontainers.image.* on the manifest
    labels: tuple[tuple[str, str], ...] = ()
    architecture: str = "amd64"  # dpkg architecture
    history: tuple[str, ...] = ()  # created_by per layer; never put secrets or env values here

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise RelaykitError(f"bad image name {self.name!r}",
                                hint="lowercase letters, digits, . _ - and / separators")
        if not self.tags:
            raise RelaykitError("an image needs at least one tag")
        if bad := [t for t in self.tags if not _TAG_RE.match(t)]:
            raise RelaykitError(f"bad image tag(s): {', '.join(bad)}")
        if bad_ports := [p for p in self.exposed_ports if not 0 < p < 65536]:
            raise RelaykitError(f"bad port(s): {bad_ports}")
        if not self.entrypoint:
            raise RelaykitError("an image needs an entrypoint")
        oci_platform(self.architecture)

    @property
    def created(self) -> str:
        return rfc3339(self.epoch)


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    digest: str  # manifest digest, what a registry calls the image
    config_digest: str
    layers: tuple[LayerBlob, ...]
    size: int  # compressed: layers + config + manifest
    refs: tuple[str, ...] = field(default=())
    referrers: tuple[tuple[str, str], ...] = ()  # (artifactType, manifest digest)
    attachments: tuple[Attachment, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path), "digest": self.digest, "config_digest": self.config_digest,
            "layers": [layer.to_json() for layer in self.layers], "size": self.size,
            "refs": list(self.refs),
            "referrers": [{"artifactType": t, "digest": d} for t, d in self.referrers],
        }


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _container_config(spec: ImageSpec) -> dict[str, object]:
    env = [f"{k}={v}" for k, v in spec.env]
    if not any(k == "PATH" for k, _ in spec.env):
        env.insert(0, f"PATH={DEFAULT_PATH}")  # other runtimes than Docker add none
    conf: dict[str, object] = {"Entrypoint": list(spec.entrypoint), "Env": env,
                               "StopSignal": spec.stop_signal}
    if spec.cmd:
        conf["Cmd"] = list(spec.cmd)
    if spec.exposed_ports:
        conf["ExposedPorts"] = {f"{p}/tcp": {} for p in sorted(set(spec.exposed_ports))}
    if spec.labels:
        conf["Labels"] = dict(spec.labels)
    if spec.healthcheck:
        conf["Healthcheck"] = {  # Docker's field names, durations in nanoseconds
            "Test": ["CMD", *spec.healthcheck],
            "Interval": spec.healthcheck_interval * _NS,
            "Timeout": spec.healthcheck_timeout * _NS,
            "StartPeriod": spec.healthcheck_start_period * _NS,
            "Retries": spec.healthcheck_retries,
        }
    return conf


def image_config(spec: ImageSpec, layers: list[LayerBlob]) -> dict[str, object]:
    names = list(spec.history) or [f"relaykit layer {i + 1}" for i in range(len(layers))]
    if len(names) != len(layers):
        raise RelaykitError(f"{len(names)} history entries for {len(layers)} layers")
    return {
        "created": spec.created,
        **oci_platform(spec.architecture),
        "config": _container_config(spec),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": spec.created, "created_by": n} for n in names],
    }


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _bytes_member(name: str, data: bytes, epoch: int) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, epoch
    return info, io.BytesIO(data)


@dataclass(frozen=True)
class Attachment:
    """An artifact about an image (SBOM, provenance), stored as an OCI 1.1 referrer."""

    artifact_type: str  # media type of the data, also the referrer's artifactType
    data: bytes
    title: str  # file name, e.g. "roaming.spdx.json"


@dataclass(frozen=True)
class ImagePlan:
    """The documents of one platform's image, computed before anything is written."""

    spec: ImageSpec
    layers: tuple[LayerBlob, ...]
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return _sha(self.manifest)

    def descriptor(self) -> dict[str, object]:
        return {**_descriptor(MT_MANIFEST, self.digest, len(self.manifest)),
                "platform": oci_platform(self.spec.architecture)}


def plan_image(spec: ImageSpec, layers: list[LayerBlob]) -> ImagePlan:
    if not layers:
        raise RelaykitError("an image needs at least one layer")
    config = _canonical(image_config(spec, layers))
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": _descriptor(MT_CONFIG, _sha(config), len(config)),
        "layers": [_descriptor(MT_LAYER, b.digest, b.size) for b in layers],
    }
    if spec.annotations:
        manifest_doc["annotations"] = dict(spec.annotations)
    return ImagePlan(spec, tuple(layers), config, _canonical(manifest_doc))


# The OCI 1.1 empty config of an artifact manifest: the two bytes "{}".
EMPTY_CONFIG = b"{}"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"


def referrer_manifest(attachment: Attachment, subject: ImagePlan) -> bytes:
    """An artifact manifest whose subject is the image: what `oras discover` and a
    registry's referrers API list for that image digest."""
    return _canonical({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "artifactType": attachment.artifact_type,
        "config": {**_descriptor(MT_EMPTY, _sha(EMPTY_CONFIG), len(EMPTY_CONFIG)),
                   "data": "e30="},
        "layers": [{**_descriptor(attachment.artifact_type, _sha(attachment.data),
                                  len(attachment.data)),
                    "annotations": {TITLE: attachment.title}}],
        "subject": _descriptor(MT_MANIFEST, subject.digest, len(subject.manifest)),
        "annotations": {CREATED: subject.spec.created},
    })


@dataclass(frozen=True)
class Referrer:
    attachment: Attachment
    manifest: bytes
    subject: str  # digest of the image manifest it is about

    @property
    def digest(self) -> str:
        return _sha(self.manifest)

    def descriptor(self) -> dict[str, object]:
        return {**_descriptor(MT_MANIFEST, self.digest, len(self.manifest)),
                "artifactType": self.attachment.artifact_type}


def referrers_of(plan: ImagePlan, attachments: Sequence[Attachment]) -> list[Referrer]:
    return [Referrer(a, referrer_manifest(a, plan), plan.digest) for a in attachments]


@dataclass(frozen=True)
class Layout:
    """Everything one archive holds: images, an optional index over them, referrers."""

    name: str
    tags: tuple[str, ...]
    epoch: int
    images: tuple[ImagePlan, ...]
    index: bytes | None  # an image index blob (multi-platform), or None: one image
    referrers: tuple[Referrer, ...]
    docker: ImagePlan  # the image `docker load` takes (Docker 20.10 loads one platform)

    def top_descriptor(self) -> dict[str, object]:
        if self.index is None:
            return self.images[0].descriptor()
        return _descriptor(MT_INDEX, _sha(self.index), len(self.index))


def _index_json(layout: Layout) -> bytes:
    top = {**layout.top_descriptor(), "annotations": {REF_NAME: layout.tags[0]}}
    # Referrers are listed without a ref name: `umoci ls` and tag lookups see the image
    # only, and tools that walk index.json find them by their subject.
    rest = [r.descriptor() for r in sorted(layout.referrers, key=lambda r: r.digest)]
    return _canonical({"schemaVersion": 2, "mediaType": MT_INDEX,
                       "manifests": [top, *rest]})


def _docker_json(layout: Layout) -> bytes:
    image = layout.docker
    return _canonical([{
        "Config": _blob_name(_sha(image.config)),
        "RepoTags": [f"{layout.name}:{t}" for t in layout.tags],
        "Layers": [_blob_name(b.digest) for b in image.layers],
    }])


def _members(layout: Layout) -> Iterator[Member]:
    epoch = layout.epoch
    blobs: dict[str, Path | bytes] = {}  # keyed by name: identical layers are stored once
    for plan in layout.images:
        for blob in plan.layers:
            if blob.path.stat().st_size != blob.size:
                raise RelaykitError(f"layer {blob.path} changed since it was written")
            blobs[_blob_name(blob.digest)] = blob.path
        blobs[_blob_name(_sha(plan.config))] = plan.config
        blobs[_blob_name(plan.digest)] = plan.manifest
    if layout.index is not None:
        blobs[_blob_name(_sha(layout.index))] = layout.index
    if layout.referrers:
        blobs[_blob_name(_sha(EMPTY_CONFIG))] = EMPTY_CONFIG
    for ref in layout.referrers:
        blobs[_blob_name(ref.digest)] = ref.manifest
        blobs[_blob_name(_sha(ref.attachment.data))] = ref.attachment.data
    yield dir_member("blobs", epoch)
    yield dir_member("blobs/sha256", epoch)
    for name in sorted(blobs):  # layer files are opened one at a time, as the writer reaches them
        source = blobs[name]
        if isinstance(source, bytes):
            yield _bytes_member(name, source, epoch)
        else:
            yield file_member(name, source, epoch)
    yield _bytes_member("index.json", _index_json(layout), epoch)
    yield _bytes_member("manifest.json", _docker_json(layout), epoch)
    yield _bytes_member("oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}), epoch)


def write_layout(layout: Layout, out: Path) -> None:
    """Write the archive at out atomically: readers see the old one or the new one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            write_archive(raw, closing_members(_members(layout)), layout.epoch)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


Attach = Callable[[ImagePlan], Sequence[Attachment]]


def write_image(spec: ImageSpec, layers: list[LayerBlob], out: Path,
                attach: Attach | None = None) -> ImageRecord:
    """Write the image archive at out atomically; returns digests and sizes.

    attach, given the planned image (its digest known), returns the artifacts to store
    as its referrers: they cannot change the image digest they describe.
    """
    plan = plan_image(spec, layers)
    referrers = referrers_of(plan, attach(plan) if attach else ())
    layout = Layout(spec.name, spec.tags, spec.epoch, (plan,), None, tuple(referrers), plan)
    write_layout(layout, out)
    return record_of(plan, out, referrers)


def record_of(plan: ImagePlan, out: Path, referrers: Sequence[Referrer]) -> ImageRecord:
    size = sum(b.size for b in plan.layers) + len(plan.config) + len(plan.manifest)
    return ImageRecord(
        path=out, digest=plan.digest, config_digest=_sha(plan.config),
        layers=plan.layers, size=size, refs=tuple(f"{plan.spec.name}:{t}" for t in plan.spec.tags),
        referrers=tuple((r.attachment.artifact_type, r.digest) for r in referrers),
        attachments=tuple(r.attachment for r in referrers),
    )
