"""What the tasks do, as plain functions: options in, results or RelaykitError out.

tasks.py stays a thin shell over these, so they are testable without invoke.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relaykit.errors import Diagnostic, RelaykitError
from relaykit.paths import build_dir
from relaykit.profile.load import LoadedProfile, load_profile, shipped_profiles
from relaykit.profile.yamlsrc import loads
from relaykit.render.postfix import Rendered, render
from relaykit.render.tree import write_tree

Log = Callable[[str], None]


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def report_warnings(warnings: tuple[Diagnostic, ...], log: Log = stderr) -> None:
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


def render_profile(profile: str, *, strict: bool = False, log: Log = stderr) -> RenderResult:
    """Validate, render, and replace build/<name>/rootfs and postconf/ atomically."""
    return build(profile, formats=(), strict=strict, log=log)


FORMATS = ("oci", "deb")


def resolve_formats(requested: str | None, declared: tuple[str, ...]) -> tuple[str, ...]:
    """--format oci|deb|all|none; default: what the profile's outputs declare."""
    if requested is None:
        return declared
    if requested == "all":
        return FORMATS
    if requested == "none":
        return ()
    if requested not in FORMATS:
        raise RelaykitError(f"unknown format {requested!r}", hint="use oci, deb, all or none")
    return (requested,)


def build(profile: str, *, formats: tuple[str, ...] | None = None, fmt: str | None = None,
          strict: bool = False, refresh: bool = False, mirror: str | None = None,
          cache_dir: Path | None = None, log: Log = stderr) -> RenderResult:
    """Validate, render, then build each format; build/<name>/ changes only on success."""
    loaded = load_profile(profile, strict=strict)
    report_warnings(loaded.warnings, log)
    p = loaded.profile
    wanted = formats if formats is not None else resolve_formats(fmt, p.formats)
    for name in wanted:
        if name == "oci" and p.oci is None:
            raise RelaykitError(f"profile {p.name!r} declares no outputs.oci",
                                hint="add outputs: {oci: {name: ...}} to the profile")
        if name == "deb" and p.deb is None:
            raise RelaykitError(f"profile {p.name!r} declares no outputs.deb",
                                hint="add outputs: {deb: {package, version, maintainer}}")
    rendered = render(p)
    out_dir = build_dir() / p.name
    # Backends are imported only when used: a config-only image rebuild is timed in bench/.
    from relaykit.buildinfo import build_inputs

    inputs = build_inputs(mirror=mirror, cache_dir=cache_dir) if wanted else None
    with staging(out_dir) as stage:
        write_tree(rendered.tree, stage / "rootfs")
        write_postconf_edits(rendered, stage / "postconf")
        if "oci" in wanted:
            from relaykit.oci.from_profile import build_oci

            assert inputs is not None
            path = build_oci(p, rendered, inputs, stage, refresh=refresh, log=log)
            log(f"wrote {out_dir / path.name}")
        if "deb" in wanted:
            from relaykit.deb.from_profile import build_deb

            assert inputs is not None
            path = build_deb(p, rendered, inputs, stage, log=log)
            write_deb_sboms(path, p.base.suite, inputs.epoch)
            log(f"wrote {out_dir / path.name} (+ .spdx.json, .cdx.json)")
    return RenderResult(loaded, rendered, out_dir)


def write_deb_sboms(deb: Path, suite: str, epoch: int) -> None:
    """<package>.deb.spdx.json and .deb.cdx.json beside the package."""
    from relaykit import __version__
    from relaykit.oci.image import rfc3339
    from relaykit.oci.sbom import deb_documents

    spdx, cdx = deb_documents(deb, suite, rfc3339(epoch), __version__, ("MIT",))
    deb.with_name(deb.name + ".spdx.json").write_bytes(spdx)
    deb.with_name(deb.name + ".cdx.json").write_bytes(cdx)


def write_postconf_edits(rendered: Rendered, out: Path) -> None:
    """The same settings as postconf edits, for a package's maintainer scripts."""
    out.mkdir(parents=True)
    main = "".join(f"{k} = {v}\n" for k, v in rendered.main_settings)
    (out / "main.cf.edits").write_text(main)
    master: list[str] = []
    for e in rendered.listeners:
        master.append(f"{e.fields()}\n")
        master.extend(f"{e.key}/{k} = {v}\n" for k, v in e.options)
    (out / "master.cf.edits").write_text("".join(master))


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


def verify(profile: str, *, fmt: str = "oci", log: Log = stderr) -> tuple[bool, str]:
    """Boot what `build` wrote for this profile and run the conformance suite on it."""
    p = load_profile(profile).profile
    out_dir = build_dir() / p.name
    if fmt == "oci":
        from relaykit.verify.image import verify_image

        archive = out_dir / f"{p.name}.oci.tar"
        if not archive.is_file():
            raise RelaykitError(f"no image at {archive}",
                                hint=f"run: invoke build --profile {profile} --format oci")
        return verify_image(p, archive, log)
    if fmt == "deb":
        from relaykit.verify.package import verify_deb

        assert p.deb is not None
        debs = sorted(out_dir.glob(f"{p.deb.package}_*.deb"))
        if not debs:
            raise RelaykitError(f"no package in {out_dir}",
                                hint=f"run: invoke build --profile {profile} --format deb")
        # verify_deb prints its own table as it goes.
        return verify_deb(p, debs[-1], log=log), ""
    raise RelaykitError(f"unknown format {fmt!r}", hint="use oci or deb")


def publish(profile: str, *, registry: str | None, tls_verify: bool = True,
            authfile: Path | None = None, log: Log = stderr) -> list[str]:
    """Push build/<name>/<name>.oci.tar to a registry under every tag of the profile."""
    from relaykit.publish import publish as push

    p = load_profile(profile).profile
    out_dir = build_dir() / p.name
    return push(p, out_dir / f"{p.name}.oci.tar", out_dir / f"{p.name}.oci.json",
                registry=registry, tls_verify=tls_verify, authfile=authfile, log=log)


def lock(*, suite: str, architecture: str | None = None, add: tuple[str, ...] = (),
         mirror: str | None = None, cache_dir: Path | None = None,
         log: Log = stderr) -> list[str]:
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
                      log: Log = stderr) -> list[str]:
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
