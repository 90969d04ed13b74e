"""The OCI backend: profile + rendered tree + static rootfs/ -> build/<name>/<name>.oci.tar."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from relaykit import debian, oci
from relaykit.buildinfo import BuildInputs, host_architecture
from relaykit.oci.image import rfc3339
from relaykit.paths import static_rootfs_dir
from relaykit.profile.model import Profile
from relaykit.render.postfix import Rendered
from relaykit.render.tree import Entry, Tree, load_static_tree

ENTRYPOINT = "/usr/lib/relaykit/entrypoint"
HEALTHCHECK = "/usr/lib/relaykit/healthcheck"
IMAGE_PACKAGES = debian.IMAGE_PACKAGES


# Everything the entrypoint writes lives below RUNTIME_DIR (a tmpfs under --read-only);
# the files other programs expect in /etc are links into it.
RUNTIME_DIR = "/run/relaykit"
RUNTIME_LINKS = (("/etc/sasldb2", f"{RUNTIME_DIR}/sasldb2"),
                 ("/etc/mailname", f"{RUNTIME_DIR}/mailname"))
# The entrypoint runs Postfix from a copy of /etc/postfix made at start; Postfix's
# set-gid programs accept another configuration only when the default one lists it.
MAIN_CF = "/etc/postfix/main.cf"
IMAGE_MAIN_CF_LINES = f"alternate_config_directories = {RUNTIME_DIR}/postfix\n"

# Healthcheck timing: Docker 20.10 has no start interval, so a short interval is what
# makes a fresh container healthy within seconds; the check itself keeps the log quiet
# (rootfs/usr/lib/relaykit/healthcheck).
HEALTH_INTERVAL = 2
HEALTH_TIMEOUT = 10
HEALTH_START_PERIOD = 30
HEALTH_RETRIES = 3


def image_overlay(rendered: Rendered) -> Tree:
    tree = Tree()
    for entry in rendered.tree:
        if entry.path == MAIN_CF:
            entry = replace(entry, data=entry.data + IMAGE_MAIN_CF_LINES.encode())
        tree.add(entry)
    tree.merge(load_static_tree(static_rootfs_dir()))
    for link, target in RUNTIME_LINKS:
        tree.add(Entry(link, "symlink", 0o777, target=target))
    return tree


def base_spec(p: Profile, inputs: BuildInputs) -> oci.BaseSpec:
    packages = tuple(sorted(set(IMAGE_PACKAGES) | set(p.base.extra_packages)))
    return oci.BaseSpec(
        suite=p.base.suite,
        architecture=p.base.architecture or host_architecture(),
        packages=packages,
        mirror=p.base.mirror or inputs.mirror,
        epoch=inputs.base_epoch,
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


def image_spec(p: Profile, inputs: BuildInputs) -> oci.ImageSpec:
    assert p.oci is not None
    annotations = {
        "org.opencontainers.image.title": p.name,
        "org.opencontainers.image.description": p.description,
        "org.opencontainers.image.version": p.version,
        "org.opencontainers.image.revision": inputs.revision,
        "org.opencontainers.image.created": rfc3339(inputs.epoch),
        "org.opencontainers.image.vendor": "relaykit",
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
        architecture=p.base.architecture or host_architecture(),
        history=(f"relaykit base {p.base.suite}", f"relaykit overlay {p.name} {p.version}"),
    )


def build_oci(p: Profile, rendered: Rendered, inputs: BuildInputs, out_dir: Path, *,
              refresh: bool = False, log: Callable[[str], None] = print) -> Path:
    """Write <out_dir>/<name>.oci.tar and its build record <name>.oci.json."""
    base = base_spec(p, inputs)
    out = out_dir / f"{p.name}.oci.tar"
    record = oci.build_image(base=base, overlay=image_overlay(rendered),
                             image=image_spec(p, inputs), out=out,
                             cache_dir=inputs.cache_dir, refresh=refresh, log=log)
    info = {"profile": p.name, "format": "oci", "epoch": inputs.epoch,
            "revision": inputs.revision, "base_cache_key": oci.cache_key(base),
            "base": {"suite": base.suite, "architecture": base.architecture,
                     "packages": list(base.packages), "epoch": base.epoch},
            **record.to_json()}
    info["path"] = out.name
    (out_dir / f"{p.name}.oci.json").write_text(json.dumps(info, indent=2) + "\n")
    return out
