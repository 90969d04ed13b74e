"""What the tasks do, as plain functions: options in, results or RelaykitError out.

relaykit.cli stays a thin shell over these, so they are testable without invoke.
Each artifact format is one Backend (build it, find it, verify it): adding a format is
one Format member and one BACKENDS entry.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from relaykit import ui
from relaykit.errors import Diagnostic, RelaykitError
from relaykit.paths import build_dir
from relaykit.profile.load import LoadedProfile, load_profile, shipped_profiles
from relaykit.profile.yamlsrc import loads
from relaykit.render.overlay import image_overlay
from relaykit.render.postfix import Rendered, render
from relaykit.render.tree import write_tree
from relaykit.ui import Log

if TYPE_CHECKING:
    from relaykit.buildinfo import BuildInputs
    from relaykit.profile.model import Profile


class Format(StrEnum):
    """An artifact `build` makes and `verify` proves; one Backend each."""

    OCI = "oci"
    DEB = "deb"
    STACK = "stack"  # a Swarm stack file for the image
    HELM = "helm"  # a Helm chart for the image


# Deployments of the image: checked against the profile, built without the Debian base.
SCALE_FORMATS = (Format.STACK, Format.HELM)


class Selector(StrEnum):
    """The --format values that name a set of formats rather than one."""

    ALL = "all"
    NONE = "none"


FORMAT_CHOICES = ", ".join([*Format, *Selector])


def report_warnings(warnings: tuple[Diagnostic, ...], log: Log = ui.log) -> None:
    for w in warnings:
        log(w.format())


def validate(profile: str, *, strict: bool = False, as_json: bool = False) -> str:
    loaded = load_profile(profile, strict=strict)
    if as_json:
        return json.dumps({"ok": True, "profile": loaded.profile.name,
                           "diagnostics": [w.to_json() for w in loaded.warnings]}, indent=2)
    report_warnings(loaded.warnings)
    return f"{loaded.profile.source_file}: profile {loaded.profile.name!r} is valid"


def show(profile: str) -> str:
    loaded = load_profile(profile)
    return yaml.safe_dump(loaded.resolved, sort_keys=False, default_flow_style=False)


def list_profiles() -> list[tuple[str, str]]:
    out = []
    for path in shipped_profiles():
        data = loads(path.read_text(encoding="utf-8"), str(path)).data
        out.append((path.stem, str(data.get("description", ""))))
    return out


@dataclass(frozen=True)
class RenderResult:
    loaded: LoadedProfile
    rendered: Rendered
    out_dir: Path  # build/<name>


def render_profile(profile: str, *, strict: bool = False, log: Log = ui.log) -> RenderResult:
    """Validate, render, and replace build/<name>/rootfs (the image overlay) atomically."""
    return build(profile, formats=(), strict=strict, log=log)


# --- backends -------------------------------------------------------------------------
# Backend modules are imported only when used: a config-only image rebuild is timed in
# bench/, and `validate` must not pay for the docker SDK.

def _build_oci(p: Profile, rendered: Rendered, inputs: BuildInputs, stage: Path,
               refresh: bool, log: Log) -> Path:
    from relaykit.oci.from_profile import build_oci

    return build_oci(p, rendered, inputs, stage, refresh=refresh, log=log)


def _build_deb(p: Profile, rendered: Rendered, inputs: BuildInputs, stage: Path,
               refresh: bool, log: Log) -> Path:
    from relaykit.deb.from_profile import build_deb

    deb = build_deb(p, rendered, inputs, stage, log=log)
    write_deb_sboms(deb, p.base.suite, inputs.epoch)  # + .deb.spdx.json, .deb.cdx.json
    return deb


def _oci_artifact(p: Profile, out_dir: Path) -> Path | None:
    archive = out_dir / f"{p.name}.oci.tar"
    return archive if archive.is_file() else None


def _deb_artifact(p: Profile, out_dir: Path) -> Path | None:
    assert p.deb is not None
    debs = sorted(out_dir.glob(f"{p.deb.package}_*.deb"))
    return debs[-1] if debs else None


def _verify_oci(p: Profile, artifact: Path, log: Log) -> tuple[bool, str]:
    from relaykit.verify.image import verify_image

    return verify_image(p, artifact, log)


def _verify_deb(p: Profile, artifact: Path, log: Log) -> tuple[bool, str]:
    from relaykit.verify.package import verify_deb

    return verify_deb(p, artifact, log=log)


def _build_stack(p: Profile, rendered: Rendered, inputs: BuildInputs, stage: Path,
                 refresh: bool, log: Log) -> Path:
    from relaykit.stack.build import build_stack

    return build_stack(p, rendered, inputs, stage)


def _build_helm(p: Profile, rendered: Rendered, inputs: BuildInputs, stage: Path,
                refresh: bool, log: Log) -> Path:
    from relaykit.stack.build import build_helm

    return build_helm(p, rendered, inputs, stage)


def _stack_artifact(p: Profile, out_dir: Path) -> Path | None:
    from relaykit.stack.build import stack_artifact

    return stack_artifact(p, out_dir)


def _helm_artifact(p: Profile, out_dir: Path) -> Path | None:
    from relaykit.stack.build import helm_artifact

    return helm_artifact(p, out_dir)


def _verify_deployment(p: Profile, artifact: Path, log: Log) -> tuple[bool, str]:
    from relaykit.stack.build import verify_deployment

    return verify_deployment(p, artifact, log)


@dataclass(frozen=True)
class Backend:
    """How one format is built from a rendered profile, found in build/<name>/, verified."""

    format: Format
    declared: Callable[[Profile], bool]  # the profile has this format's outputs section
    missing_hint: str
    build: Callable[[Profile, Rendered, BuildInputs, Path, bool, Log], Path]
    artifact: Callable[[Profile, Path], Path | None]
    verify: Callable[[Profile, Path, Log], tuple[bool, str]]


BACKENDS: dict[Format, Backend] = {
    Format.OCI: Backend(Format.OCI, lambda p: p.oci is not None,
                        "add outputs: {oci: {name: ...}} to the profile",
                        _build_oci, _oci_artifact, _verify_oci),
    Format.DEB: Backend(Format.DEB, lambda p: p.deb is not None,
                        "add outputs: {deb: {package, version, maintainer}}",
                        _build_deb, _deb_artifact, _verify_deb),
    # An undeclared outputs.stack/helm falls back to the schema's defaults: the image is
    # what a deployment needs.
    Format.STACK: Backend(Format.STACK, lambda p: p.oci is not None,
                          "add outputs: {oci: {name: ...}}: a stack runs the image",
                          _build_stack, _stack_artifact, _verify_deployment),
    Format.HELM: Backend(Format.HELM, lambda p: p.oci is not None,
                         "add outputs: {oci: {name: ...}}: a chart runs the image",
                         _build_helm, _helm_artifact, _verify_deployment),
}


def parse_format(value: str | Format) -> Format:
    try:
        return Format(value)
    except ValueError:
        raise RelaykitError(f"unknown format {value!r}",
                            hint="use " + " or ".join(Format)) from None


def resolve_formats(requested: str | None, declared: tuple[str, ...]) -> tuple[Format, ...]:
    """--format oci|deb|all|none; default: what the profile's outputs declare."""
    if requested is None:
        return tuple(parse_format(name) for name in declared)
    if requested == Selector.ALL:  # the artifacts; deployments are asked for by name
        return tuple(fmt for fmt in Format if fmt not in SCALE_FORMATS)
    if requested == Selector.NONE:
        return ()
    if requested not in set(Format):
        raise RelaykitError(f"unknown format {requested!r}", hint=f"use {FORMAT_CHOICES}")
    return (Format(requested),)


def _backends_for(p: Profile, wanted: tuple[Format, ...]) -> list[Backend]:
    backends = [BACKENDS[fmt] for fmt in wanted]
    for backend in backends:
        if not backend.declared(p):
            raise RelaykitError(f"profile {p.name!r} declares no outputs.{backend.format}",
                                hint=backend.missing_hint)
    return backends


def build(profile: str, *, formats: tuple[str, ...] | None = None, fmt: str | None = None,
          strict: bool = False, refresh: bool = False, mirror: str | None = None,
          cache_dir: Path | None = None, log: Log = ui.log) -> RenderResult:
    """Validate, render, then build each format; build/<name>/ changes only on success."""
    loaded = load_profile(profile, strict=strict)
    report_warnings(loaded.warnings, log)
    p = loaded.profile
    wanted = (tuple(parse_format(f) for f in formats) if formats is not None
              else resolve_formats(fmt, p.formats + p.scale.formats))
    backends = _backends_for(p, wanted)
    scale = tuple(fmt.value for fmt in wanted if fmt in SCALE_FORMATS)
    if scale:
        from relaykit.stack.build import check_scale

        report_warnings(check_scale(profile, loaded, scale), log)
    rendered = render(p)
    out_dir = build_dir() / p.name
    with staging(out_dir) as stage:
        write_tree(image_overlay(rendered), stage / "rootfs")
        if backends:
            from relaykit.buildinfo import build_inputs

            inputs = build_inputs(mirror=mirror, cache_dir=cache_dir)
        for backend in backends:
            with ui.complete_step(f"building {backend.format} for {p.name}"):
                path = backend.build(p, rendered, inputs, stage, refresh, log)
            log(f"wrote {out_dir / path.name}")
    return RenderResult(loaded, rendered, out_dir)


def write_deb_sboms(deb: Path, suite: str, epoch: int) -> None:
    """<package>.deb.spdx.json and .deb.cdx.json beside the package."""
    from relaykit import __version__
    from relaykit.oci.image import rfc3339
    from relaykit.oci.sbom import deb_documents

    spdx, cdx = deb_documents(deb, suite, rfc3339(epoch), __version__, ("MIT",))
    deb.with_name(deb.name + ".spdx.json").write_bytes(spdx)
    deb.with_name(deb.name + ".cdx.json").write_bytes(cdx)


class staging:
    """Build into a sibling temp dir; on success swap the subtrees it made into place.

    A failure leaves the previous build untouched and no half-written files.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp: Path | None = None

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.temp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", dir=self.final.parent))
        return self.temp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.temp is not None
        try:
            if exc_type is None:
                self.final.mkdir(exist_ok=True)
                for child in sorted(self.temp.iterdir()):
                    target = self.final / child.name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    elif target.exists():
                        target.unlink()
                    child.rename(target)
        finally:
            shutil.rmtree(self.temp, ignore_errors=True)
        if self.final.parent.exists() and not any(self.final.parent.iterdir()):
            self.final.parent.rmdir()


def verify(profile: str, *, fmt: str = Format.OCI, log: Log = ui.log) -> tuple[bool, str]:
    """Boot what `build` wrote for this profile and run the conformance suite on it."""
    p = load_profile(profile).profile
    backend = _backends_for(p, (parse_format(fmt),))[0]
    out_dir = build_dir() / p.name
    artifact = backend.artifact(p, out_dir)
    if artifact is None:
        raise RelaykitError(f"no {backend.format} artifact of {p.name!r} in {out_dir}",
                            hint=f"run: relaykit build --profile {profile} "
                                 f"--format {backend.format}")
    with ui.complete_step(f"verifying {artifact.name}"):
        return backend.verify(p, artifact, log)


def publish(profile: str, *, registry: str | None, tls_verify: bool = True,
            authfile: Path | None = None, log: Log = ui.log) -> list[str]:
    """Push build/<name>/<name>.oci.tar to a registry under every tag of the profile."""
    from relaykit.publish import publish as push

    p = load_profile(profile).profile
    out_dir = build_dir() / p.name
    return push(p, out_dir / f"{p.name}.oci.tar", out_dir / f"{p.name}.oci.json",
                registry=registry, tls_verify=tls_verify, authfile=authfile, log=log)


def lock(*, suite: str, architecture: str | None = None, add: tuple[str, ...] = (),
         mirror: str | None = None, cache_dir: Path | None = None,
         log: Log = ui.log) -> list[str]:
    """Resolve the image base on the mirror now, keep its .debs, rewrite the lock;
    returns what changed (one line per package)."""
    from relaykit import debian
    from relaykit.buildinfo import build_inputs, host_architecture
    from relaykit.oci.base import lock_base
    from relaykit.oci.lock import find_lock, lock_path, write_lock

    if suite not in debian.SUITES:
        raise RelaykitError(f"unsupported Debian suite {suite!r}",
                            hint="use one of: " + ", ".join(debian.SUITES))
    if bad := [a for a in add if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", a)]:
        raise RelaykitError(f"bad package name(s) in --add: {', '.join(bad)}",
                            hint="Debian package names: lowercase letters, digits, + . -")
    arch = architecture or host_architecture()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", arch):
        raise RelaykitError(f"bad dpkg architecture {arch!r}", hint="e.g. amd64 or arm64")
    inputs = build_inputs(mirror=mirror, cache_dir=cache_dir)
    path = lock_path(suite, arch)
    try:
        old = find_lock(suite, arch)
    except RelaykitError as exc:  # a damaged lock is what a refresh repairs
        log(f"warning: {exc.message}; writing a new lock")
        old = None
    # Keep what the lock resolved before (profiles' extra packages) plus the image's own.
    wanted = set(debian.IMAGE_PACKAGES) | set(old.requested if old else ()) | set(add)
    new = lock_base(suite, arch, tuple(sorted(wanted)), inputs.mirror, inputs.cache_dir, log)
    from relaykit.oci.lock import diff_locks

    changes = diff_locks(old, new)
    write_lock(new, path)
    log(f"wrote {path}: {len(new.packages)} packages, {len(changes)} change(s)")
    return changes


def verify_provenance(profile: str, *, public_key: Path, archive: Path | None = None,
                      log: Log = ui.log) -> list[str]:
    """Check the built image (or archive) against its signed provenance; one line per
    verified image.  Any failure is a RelaykitError."""
    from relaykit.oci.provenance import verify_archive

    if archive is None:
        p = load_profile(profile).profile
        archive = build_dir() / p.name / f"{p.name}.oci.tar"
        if not archive.is_file():
            raise RelaykitError(f"no image at {archive}",
                                hint=f"run: invoke build --profile {profile} --format oci")
    lines = []
    for v in verify_archive(archive, public_key):
        lines.append(f"{archive.name}: {v.name}@{v.image}: provenance signed, subject matches, "
                     f"{v.blobs} blobs intact; built by {v.builder} from "
                     + ", ".join(v.materials))
    return lines
