"""The OCI backend: profile + rendered tree + static rootfs/ -> build/<name>/<name>.oci.tar."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path

from relaykit import __version__, debian, oci
from relaykit.buildinfo import BuildInputs, host_architecture
from relaykit.oci.image import rfc3339
from relaykit.oci.index import IndexRecord, build_index
from relaykit.oci.lock import find_lock
from relaykit.oci.provenance import (
    DSSE_MEDIA_TYPE,
    KEY_ENV,
    Material,
    load_private_key,
    sign,
    signing_key_from_env,
    statement,
)
from relaykit.oci.sbom import (
    CYCLONEDX_MEDIA_TYPE,
    SPDX_MEDIA_TYPE,
    OverlayFile,
    Subject,
    cyclonedx,
    spdx,
)
from relaykit.profile.model import Profile
from relaykit.render.overlay import image_overlay
from relaykit.render.postfix import Rendered
from relaykit.render.tree import Tree
from relaykit.ui import Log

ENTRYPOINT = "/usr/lib/relaykit/entrypoint"
HEALTHCHECK = "/usr/lib/relaykit/healthcheck"
IMAGE_PACKAGES = debian.IMAGE_PACKAGES
RELAYKIT_LICENSE = "MIT"


# Healthcheck timing: Docker 20.10 has no start interval, so a short interval is what
# makes a fresh container healthy within seconds; the check itself keeps the log quiet
# (rootfs/usr/lib/relaykit/healthcheck).
HEALTH_INTERVAL = 2
HEALTH_TIMEOUT = 10
HEALTH_START_PERIOD = 30
HEALTH_RETRIES = 3


def architectures(p: Profile) -> tuple[str, ...]:
    """The dpkg architectures to build: base.architectures, else base.architecture, else
    the build host's."""
    return p.base.architectures or (p.base.architecture or host_architecture(),)


def base_spec(p: Profile, inputs: BuildInputs, arch: str | None = None) -> oci.BaseSpec:
    packages = tuple(sorted(set(IMAGE_PACKAGES) | set(p.base.extra_packages)))
    architecture = arch or architectures(p)[0]
    return oci.BaseSpec(
        suite=p.base.suite,
        architecture=architecture,
        packages=packages,
        mirror=p.base.mirror or inputs.mirror,
        epoch=inputs.base_epoch,
        drop_packages=debian.RUNTIME_DROP_PACKAGES,
        lock=find_lock(p.base.suite, architecture),  # committed: locks/<suite>-<arch>.lock
    )


def _public_ports(p: Profile) -> tuple[int, ...]:
    """EXPOSE only what listens beyond loopback (a satellite exposes nothing)."""
    if p.postfix.inet_interfaces == ("loopback-only",):
        return ()
    ports = []
    for lis in p.listeners:
        if lis.address is None or not ipaddress.ip_address(lis.address).is_loopback:
            ports.append(lis.port)
    return tuple(ports)


def image_spec(p: Profile, inputs: BuildInputs, arch: str | None = None) -> oci.ImageSpec:
    assert p.oci is not None
    annotations = {
        "org.opencontainers.image.title": p.name,
        "org.opencontainers.image.description": p.description,
        "org.opencontainers.image.version": p.version,
        "org.opencontainers.image.revision": inputs.revision,
        "org.opencontainers.image.created": rfc3339(inputs.epoch),
        "org.opencontainers.image.vendor": "relaykit",
        # relaykit's own files; each Debian package's licences are in the SBOM.
        "org.opencontainers.image.licenses": RELAYKIT_LICENSE,
    }
    if p.oci.source:
        annotations["org.opencontainers.image.source"] = p.oci.source
    return oci.ImageSpec(
        name=p.oci.name,
        tags=p.oci.tags,
        entrypoint=(ENTRYPOINT,),
        epoch=inputs.epoch,
        exposed_ports=_public_ports(p),
        healthcheck=(HEALTHCHECK,),
        healthcheck_interval=HEALTH_INTERVAL,
        healthcheck_timeout=HEALTH_TIMEOUT,
        healthcheck_start_period=HEALTH_START_PERIOD,
        healthcheck_retries=HEALTH_RETRIES,
        stop_signal="SIGTERM",
        annotations=tuple(sorted(annotations.items())),
        labels=tuple(sorted(annotations.items())),
        architecture=arch or architectures(p)[0],
        history=(f"relaykit base {p.base.suite}", f"relaykit overlay {p.name} {p.version}"),
    )


def overlay_files(tree: Tree) -> list[OverlayFile]:
    return [OverlayFile.of(e.path, e.data) for e in tree.entries.values() if e.kind == "file"]


def _stem(p: Profile, base: oci.BaseLayer) -> str:
    """File name stem of an image's artifacts: one per platform when there are several."""
    return f"{p.name}.{base.spec.architecture}" if p.base.architectures else p.name


def sbom_attachments(p: Profile, inputs: BuildInputs, overlay: Tree, base: oci.BaseLayer,
                     plan: oci.ImagePlan) -> list[oci.Attachment]:
    """SPDX and CycloneDX documents of the planned image: its dpkg packages and overlay."""
    assert p.oci is not None
    stem = _stem(p, base)
    subject = Subject("container", p.oci.name, p.version, plan.digest, rfc3339(inputs.epoch),
                      p.base.suite)
    files = overlay_files(overlay)
    return [
        oci.Attachment(SPDX_MEDIA_TYPE, spdx(subject, base.packages, files, __version__),
                       f"{stem}.spdx.json"),
        oci.Attachment(CYCLONEDX_MEDIA_TYPE,
                       cyclonedx(subject, base.packages, files, __version__),
                       f"{stem}.cdx.json"),
    ]


def provenance_attachment(p: Profile, inputs: BuildInputs, base: oci.BaseLayer,
                          plan: oci.ImagePlan, key: Path) -> oci.Attachment:
    """The signed SLSA provenance of the planned image: what it was built from."""
    assert p.oci is not None
    materials = []
    if inputs.revision != "unknown":
        materials.append(Material("relaykit source", {"gitCommit": inputs.revision},
                                  f"git+{p.oci.source}@{inputs.revision}" if p.oci.source
                                  else ""))
    source = Path(p.source_file)
    if source.is_file():
        materials.append(Material(f"profile {source.name}",
                                  {"sha256": hashlib.sha256(source.read_bytes()).hexdigest()}))
    if base.spec.lock is not None:
        lock = base.spec.lock
        materials.append(Material(f"locks/{lock.suite}-{lock.architecture}.lock",
                                  {"sha256": hashlib.sha256(lock.text().encode()).hexdigest()}))
    materials.append(Material(f"base layer {base.spec.suite}/{base.spec.architecture}",
                              {"sha256": base.blob.digest.removeprefix("sha256:")}))
    doc = statement(
        name=p.oci.name, digest=plan.digest, builder=f"urn:relaykit:builder:{__version__}",
        parameters={"profile": p.name, "format": "oci", "tags": list(p.oci.tags)},
        internal={"SOURCE_DATE_EPOCH": inputs.epoch, "base_epoch": inputs.base_epoch,
                  "pinned": base.spec.lock is not None},
        materials=materials)
    return oci.Attachment(DSSE_MEDIA_TYPE, sign(doc, load_private_key(key)),
                          f"{_stem(p, base)}.provenance.dsse.json")


def build_oci(p: Profile, rendered: Rendered, inputs: BuildInputs, out_dir: Path, *,
              refresh: bool = False, log: Log = print) -> Path:
    """Write <out_dir>/<name>.oci.tar, its build record <name>.oci.json and, beside them,
    the artifacts stored in the archive as the image's referrers (SBOMs)."""
    base = base_spec(p, inputs)
    out = out_dir / f"{p.name}.oci.tar"
    overlay = image_overlay(rendered)
    key = signing_key_from_env()
    if key is not None:
        load_private_key(key)  # a bad key fails before the base is built
    else:
        log(f"provenance: not signed ({KEY_ENV} is not set)")

    def attach(layer: oci.BaseLayer, plan: oci.ImagePlan) -> list[oci.Attachment]:
        found = sbom_attachments(p, inputs, overlay, layer, plan)
        if key is not None:
            found.append(provenance_attachment(p, inputs, layer, plan, key))
        return found

    record: oci.ImageRecord | IndexRecord
    if p.base.architectures:
        record = build_index(
            bases=[base_spec(p, inputs, a) for a in p.base.architectures], overlay=overlay,
            images=[image_spec(p, inputs, a) for a in p.base.architectures], out=out,
            cache_dir=inputs.cache_dir, host=host_architecture(), refresh=refresh, log=log,
            attach=attach)
    else:
        record = oci.build_image(
            base=base, overlay=overlay, image=image_spec(p, inputs), out=out,
            cache_dir=inputs.cache_dir, refresh=refresh, log=log, attach=attach)
    for attachment in record.attachments:
        (out_dir / attachment.title).write_bytes(attachment.data)
    bases = [base_spec(p, inputs, a) for a in architectures(p)]
    info = {"profile": p.name, "format": "oci", "epoch": inputs.epoch,
            "revision": inputs.revision, "base_cache_key": oci.cache_key(base),
            "base": {"suite": base.suite, "architecture": base.architecture,
                     "packages": list(base.packages), "epoch": base.epoch},
            **record.to_json()}
    if len(bases) > 1 or p.base.architectures:
        info["bases"] = [{"architecture": b.architecture, "cache_key": oci.cache_key(b)}
                         for b in bases]
    info["path"] = out.name
    (out_dir / f"{p.name}.oci.json").write_text(json.dumps(info, indent=2) + "\n")
    return out
