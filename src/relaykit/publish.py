"""Publish a built image to an OCI registry with skopeo (no Docker engine needed).

The blobs are copied as built, so the registry serves the same manifest digest that
`invoke build` recorded; a mismatch is an error.  A multi-platform build pushes its
image index and every platform's image (skopeo --all).  The SBOM and provenance
referrers stay in the archive and in build/<name>/: skopeo cannot push OCI referrers.
Registry credentials come from an auth file (`--authfile`, or REGISTRY_AUTH_FILE /
containers-auth.json), never argv.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from relaykit.errors import RelaykitError
from relaykit.profile.model import Profile
from relaykit.ui import Log


def _skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        raise RelaykitError("skopeo is not installed", hint="apt-get install skopeo")
    return path


def destination(p: Profile, registry: str | None, tag: str) -> str:
    assert p.oci is not None
    name = p.oci.name if registry is None else f"{registry.rstrip('/')}/{p.oci.name}"
    return f"docker://{name}:{tag}"


def publish(p: Profile, archive: Path, record: Path, *, registry: str | None = None,
            tls_verify: bool = True, authfile: Path | None = None,
            log: Log = print) -> list[str]:
    """Push every tag of the profile's image; returns the pushed references."""
    if p.oci is None:
        raise RelaykitError(f"profile {p.name!r} declares no outputs.oci")
    if not archive.is_file():
        raise RelaykitError(f"no image at {archive}",
                            hint=f"run: invoke build --profile {p.name} --format oci")
    doc = json.loads(record.read_text())
    built = doc["digest"]
    # A multi-platform build's tag names an image index: push it and every platform.
    every = ["--all"] if "platforms" in doc else []
    source = f"oci-archive:{archive}:{p.oci.tags[0]}"
    flags = [f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
    if authfile is not None:
        flags.append(f"--authfile={authfile}")
    pushed = []
    for tag in p.oci.tags:
        dest = destination(p, registry, tag)
        _run([_skopeo(), "copy", "--quiet", "--preserve-digests", *every, *flags, source, dest],
             f"push to {dest}")
        served = _run([_skopeo(), "inspect", "--raw",
                       f"--tls-verify={'true' if tls_verify else 'false'}",
                       *flags[1:], dest], f"inspect {dest}")
        digest = "sha256:" + hashlib.sha256(served.encode()).hexdigest()
        if digest != built:
            raise RelaykitError(f"{dest} serves {digest}, but the build recorded {built}",
                                hint="the registry rewrote the manifest")
        log(f"pushed {dest} ({digest})")
        pushed.append(dest)
    return pushed


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RelaykitError(f"{what} failed: {tail}",
                            hint="check the registry address, TLS (--no-tls-verify for a "
                            "plain-HTTP test registry) and credentials (--authfile)")
    return proc.stdout
