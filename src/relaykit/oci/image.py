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
from collections.abc import Iterator
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

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path), "digest": self.digest, "config_digest": self.config_digest,
            "layers": [layer.to_json() for layer in self.layers], "size": self.size,
            "refs": list(self.refs),
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
class _Documents:
    config: bytes
    manifest: bytes
    index: bytes
    docker: bytes


def _documents(spec: ImageSpec, layers: list[LayerBlob]) -> _Documents:
    config = _canonical(image_config(spec, layers))
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": _descriptor(MT_CONFIG, _sha(config), len(config)),
        "layers": [_descriptor(MT_LAYER, b.digest, b.size) for b in layers],
    }
    if spec.annotations:
        manifest_doc["annotations"] = dict(spec.annotations)
    manifest = _canonical(manifest_doc)
    index = _canonical({
        "schemaVersion": 2, "mediaType": MT_INDEX,
        "manifests": [{
            **_descriptor(MT_MANIFEST, _sha(manifest), len(manifest)),
            "platform": oci_platform(spec.architecture),
            "annotations": {REF_NAME: spec.tags[0]},
        }],
    })
    docker = _canonical([{
        "Config": _blob_name(_sha(config)),
        "RepoTags": [f"{spec.name}:{t}" for t in spec.tags],
        "Layers": [_blob_name(b.digest) for b in layers],
    }])
    return _Documents(config, manifest, index, docker)


def _members(spec: ImageSpec, layers: list[LayerBlob], docs: _Documents) -> Iterator[Member]:
    epoch = spec.epoch
    blobs: dict[str, Path | bytes] = {}  # keyed by name: identical layers are stored once
    for blob in layers:
        if blob.path.stat().st_size != blob.size:
            raise RelaykitError(f"layer {blob.path} changed since it was written")
        blobs[_blob_name(blob.digest)] = blob.path
    blobs[_blob_name(_sha(docs.config))] = docs.config
    blobs[_blob_name(_sha(docs.manifest))] = docs.manifest
    yield dir_member("blobs", epoch)
    yield dir_member("blobs/sha256", epoch)
    for name in sorted(blobs):  # layer files are opened one at a time, as the writer reaches them
        source = blobs[name]
        if isinstance(source, bytes):
            yield _bytes_member(name, source, epoch)
        else:
            yield file_member(name, source, epoch)
    yield _bytes_member("index.json", docs.index, epoch)
    yield _bytes_member("manifest.json", docs.docker, epoch)
    yield _bytes_member("oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}), epoch)


def write_image(spec: ImageSpec, layers: list[LayerBlob], out: Path) -> ImageRecord:
    """Write the image archive at out atomically; returns digests and sizes."""
    if not layers:
        raise RelaykitError("an image needs at least one layer")
    docs = _documents(spec, layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            write_archive(raw, closing_members(_members(spec, layers, docs)), spec.epoch)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)  # readers see the old archive or the complete new one
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    size = sum(b.size for b in layers) + len(docs.config) + len(docs.manifest)
    return ImageRecord(
        path=out, digest=_sha(docs.manifest), config_digest=_sha(docs.config),
        layers=tuple(layers), size=size, refs=tuple(f"{spec.name}:{t}" for t in spec.tags),
    )
