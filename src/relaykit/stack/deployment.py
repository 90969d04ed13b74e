"""What every scaled deployment of the image shares: the runtime contract (which secrets
go where, which ports are public) and the checks that only make sense once the relay runs
behind a cluster's networking (policy that knows the deployment).

The checks are plain functions over the resolved profile dict, like relaykit.profile.policy:
`declared_deployment_findings` can be registered there as is; `check_deployable` runs them
at build time for the formats asked for, pinned to the profile's FILE:LINE.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relaykit.errors import Diagnostic, Level, ProfileError, RelaykitError
from relaykit.profile.model import (
    HelmOutput,
    Listener,
    Profile,
    StackOutput,
    helm_output,
    stack_output,
)
from relaykit.profile.networks import Network, Unbounded, embedded, network, networks
from relaykit.profile.yamlsrc import Located, PathKey, format_path

if TYPE_CHECKING:
    from relaykit.profile.policy import Finding

SECRETS_DIR = "/run/secrets"  # the image's RELAYKIT_SECRETS_DIR default
QUEUE_DIR = "/var/spool/postfix"
HEALTHCHECK = ("/usr/lib/relaykit/healthcheck",)
HEALTHCHECK_TIMEOUT_S = 10
HEALTHCHECK_START_S = 20
HEALTHCHECK_RETRIES = 3
# Capabilities Postfix's master (root: chroot, setuid to postfix, binds ports < 1024) and
# saslauthd need; every other one is dropped.  Measured: the image runs healthy with
# exactly these under Docker and Swarm (tests/integration/test_k8s_secrets.py, test_swarm.py).
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_BIND_SERVICE", "SETGID",
                "SETUID", "SYS_CHROOT")


class Backend(StrEnum):
    STACK = "stack"
    HELM = "helm"

    @property
    def label(self) -> str:
        return "Swarm stack" if self is Backend.STACK else "Helm chart"


@dataclass(frozen=True)
class SecretFile:
    """One file of the runtime contract, read from SECRETS_DIR at every start.  Every one
    is required: the image refuses to start (or serves no AUTH) without it."""

    key: str  # file name under /run/secrets, and the key in a Kubernetes Secret
    what: str
    private: bool  # 0400 instead of 0444


def runtime_secrets(p: Profile) -> tuple[SecretFile, ...]:
    """The files the image reads at start, per the profile (paths checked in check_paths)."""
    files: list[SecretFile] = []
    if p.sasl is not None:
        files.append(SecretFile(_key(p.sasl.users_file), "SASL users, user[@realm]:password "
                                "per line", private=True))
    if p.tls.managed:
        files.append(SecretFile("tls.crt", "TLS certificate chain (PEM)", private=False))
        files.append(SecretFile("tls.key", "TLS private key (PEM)", private=True))
    if p.outbound.sasl:
        files.append(SecretFile(_key(p.outbound.credentials_file), "smarthost credentials, "
                                "Postfix sasl_passwd format", private=True))
    return tuple(files)


def _key(path: str) -> str:
    return path.removeprefix(SECRETS_DIR + "/")


def public_listeners(p: Profile) -> tuple[Listener, ...]:
    """Listeners reachable from the network: what a Service or published port exposes."""
    if p.postfix.inet_interfaces == ("loopback-only",):
        return ()
    return tuple(lis for lis in p.listeners
                 if lis.address is None or not _is_loopback(lis.address))


def _is_loopback(address: str) -> bool:
    """The schema's pattern lets no name (`localhost`) through, only what looks like an
    address; one that does not parse is no loopback (policy refuses it: bad-address)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def image_ref(p: Profile) -> str:
    """name:tag with the most specific tag the profile gives (a version, not `latest`)."""
    assert p.oci is not None
    tags = [t for t in p.oci.tags if t != "latest"] or list(p.oci.tags)
    return f"{p.oci.name}:{tags[0]}"


# --- settings: declared, or the schema's defaults when only --format asked for them -------

def _section(doc: dict[str, Any], backend: Backend) -> dict[str, Any]:
    section = doc.get("outputs", {}).get(backend.value)
    if section is not None:
        return dict(section)
    from relaykit.profile.load import apply_defaults, load_schema

    data: dict[str, Any] = {}
    schema = load_schema()["properties"]["outputs"]["properties"][backend.value]
    apply_defaults(copy.deepcopy(schema), data)
    return data


def stack_settings(p: Profile) -> StackOutput:
    """outputs.stack as declared, else the schema's defaults."""
    return p.scale.stack or stack_output(_section({}, Backend.STACK))


def helm_settings(p: Profile) -> HelmOutput:
    """outputs.helm as declared, else the schema's defaults."""
    return p.scale.helm or helm_output(_section({}, Backend.HELM))


# --- checks ----------------------------------------------------------------------------
# relaykit.profile.policy is imported when a check runs, not at import time, so that
# policy.py can import this module to register declared_deployment_findings.

def _error(path: PathKey, message: str, hint: str, code: str) -> Finding:
    from relaykit.profile import policy

    return policy.error(path, message, hint, code)


def _warning(path: PathKey, message: str, hint: str, code: str) -> Finding:
    from relaykit.profile import policy

    return policy.warning(path, message, hint, code)


def _published(backend: Backend, section: dict[str, Any]) -> bool:
    if backend is Backend.STACK:
        return bool(section["publish"] != "none")
    return bool(section["service_type"] != "ClusterIP")


ANY_V4 = ipaddress.IPv4Network("0.0.0.0/0")


def _trusted(cidr: str) -> tuple[Network, list[tuple[str, Network]]]:
    """A mynetworks entry, and the IPv4 networks it stands for with the embedding's name;
    an entry where any IPv4 host may appear (policy refuses it: open-relay) stands for
    all of IPv4."""
    net = network(cidr, strict=False)
    if isinstance(net, ipaddress.IPv4Network):
        return net, []
    try:
        return net, [(e.name, v4) for e, v4 in embedded(net)]
    except Unbounded as exc:
        return net, [(exc.embedding.name, ANY_V4)]


def _overlap(a: list[Network], b: Network) -> bool:
    return any(n.version == b.version and n.overlaps(b) for n in a)


def mynetworks_outside_cluster(doc: dict[str, Any], backend: Backend) -> Iterator[Finding]:
    """A mynetworks entry that overlaps the cluster's own networks trusts every pod or task
    to relay without AUTH; once the relay is published, proxied or SNATed outside clients
    arrive from those networks too: an open relay.  Both sides are compared with every
    IPv4 network an IPv6 one stands for (relaykit.profile.networks, as policy counts)."""
    section = _section(doc, backend)
    published = _published(backend, section)
    cluster: list[list[Network]] = []
    for j, text in enumerate(section["cluster_networks"]):
        at: PathKey = ("outputs", backend.value, "cluster_networks", j)
        try:
            cluster.append(networks(text, strict=False))
        except Unbounded as exc:
            yield _error(at, f"cluster network {text} cannot be compared with "
                         f"mynetworks: {exc}", "list the networks the cluster's "
                         "workloads really use", "bad-network")
        except ValueError as exc:
            yield _error(at, f"cluster network {text!r} is not a network: {exc}",
                         "write address/prefix, e.g. 10.96.0.0/12 or fd00::/8",
                         "bad-network")
    for i, cidr in enumerate(doc["postfix"]["mynetworks"]):
        try:
            net, v4s = _trusted(cidr)
        except ValueError:
            continue  # policy reports malformed networks
        hit = [c for c in cluster if any(_overlap(c, n) for n in (net, *(v for _, v in v4s)))]
        if not hit:
            continue
        hits = ", ".join(str(c[0]) for c in hit)
        via = [f"{v4} as {name}" for name, v4 in v4s
               if _overlap([n for c in hit for n in c], v4)]
        entry = f"mynetworks {cidr}" + (f" (which stands for IPv4 {', '.join(via)})"
                                        if via else "")
        path: PathKey = ("postfix", "mynetworks", i)
        where = "pod/service" if backend is Backend.HELM else "container (overlay/bridge)"
        if published:
            yield _error(
                path, f"{entry} overlaps the cluster's {where} network(s) {hits} while "
                f"the {backend.label} publishes the relay: clients that arrive proxied or "
                "SNATed from there relay without AUTH (open relay)",
                "trust only loopback (and hosts outside the cluster); let in-cluster senders "
                "authenticate, or do not publish the relay", "cluster-relay")
        else:
            yield _warning(
                path, f"{entry} overlaps the cluster's {where} network(s) {hits}: every "
                "workload there relays without AUTH",
                "trust only the workloads that send mail, or make them authenticate",
                "cluster-relay")


def check_paths(doc: dict[str, Any], backend: Backend) -> Iterator[Finding]:
    """Secrets are mounted as files under /run/secrets: the runtime contract must name them
    there (a Swarm secret's target and a Secret volume's keys are file names)."""
    candidates: list[tuple[PathKey, str]] = []
    if doc.get("sasl") is not None:
        candidates.append((("sasl", "users_file"), doc["sasl"]["users_file"]))
    if doc["outbound"]["sasl"]:
        candidates.append((("outbound", "credentials_file"), doc["outbound"]["credentials_file"]))
    for path, value in candidates:
        parent, name = Path(value).parent, Path(value).name
        if str(parent) != SECRETS_DIR or name.startswith(".") or name in ("tls.crt",
                                                                           "tls.key"):
            yield _error(path, f"{value} is not a file of its own directly in "
                         f"{SECRETS_DIR}: a {backend.label} mounts secrets only there",
                         f"use {SECRETS_DIR}/{name.lstrip('.') or 'sasl-users'}",
                         "secret-path")
    if doc["tls"]["cert_file"] is not None:
        yield _error(("tls", "cert_file"), "a fixed certificate path cannot be shared by "
                     f"the replicas of a {backend.label}", "leave tls.cert_file and "
                     "key_file unset: replicas read tls.crt and tls.key from the secret",
                     "secret-path")


def check_serves_network(doc: dict[str, Any], backend: Backend) -> Iterator[Finding]:
    if doc["postfix"]["inet_interfaces"] == ["loopback-only"] or all(
            lis.get("address") is not None and _is_loopback(lis["address"])
            for lis in doc["listeners"]):
        yield _error(("listeners",), f"every listener is on loopback: the replicas of a "
                     f"{backend.label} would serve nobody", "scale a relay that listens on "
                     "the network (e.g. the roaming profile), not a satellite",
                     "not-scalable")
    if doc.get("outputs", {}).get("oci") is None:
        yield _error(("outputs",), f"a {backend.label} runs the profile's image, and the "
                     "profile declares no outputs.oci",
                     "add outputs: {oci: {name: ..., tags: [...]}}", "no-image")


def check_requests(doc: dict[str, Any], backend: Backend) -> Iterator[Finding]:
    section = _section(doc, backend)
    res = section["resources"]
    base: PathKey = ("outputs", backend.value, "resources")
    for request, limit in (("cpu_request_millicores", "cpu_millicores"),
                           ("memory_request_mib", "memory_mib")):
        if res[request] > res[limit]:
            yield _error((*base, request), f"{request} {res[request]} is above the "
                         f"limit {limit} {res[limit]}", f"lower {request} or raise {limit}",
                         "resources")


def check_chart_version(doc: dict[str, Any], backend: Backend) -> Iterator[Finding]:
    if backend is not Backend.HELM:
        return
    from relaykit.chart.render import chart_version

    try:
        chart_version(str(doc["version"]))
    except RelaykitError as exc:
        yield _error(("version",), exc.message, exc.hint, "chart-version")


def deployment_findings(doc: dict[str, Any], backends: tuple[Backend, ...]
                        ) -> list[Finding]:
    """On a schema-valid document (as policy.run): no exception is swallowed, a check
    that fails on valid input is a bug to see, not a pass (a cluster network it could not
    read once switched the open-relay check off without a word)."""
    found: list[Finding] = []
    for backend in backends:
        for check in (check_serves_network, check_paths, mynetworks_outside_cluster,
                      check_requests, check_chart_version):
            found.extend(check(doc, backend))
    return found


def declared_deployment_findings(doc: dict[str, Any]) -> Iterator[Finding]:
    """For relaykit.profile.policy: the checks of the deployments a profile declares."""
    outputs = doc.get("outputs") or {}
    yield from deployment_findings(doc, tuple(b for b in Backend if b.value in outputs))


def check_deployable(located: Located, backends: tuple[Backend, ...]
                     ) -> tuple[Diagnostic, ...]:
    """Raise ProfileError (FILE:LINE: ...) if a requested deployment is unsafe; return the
    warnings."""
    diagnostics = []
    for f in deployment_findings(located.data, backends):
        loc = located.loc(f.path)
        diagnostics.append(Diagnostic(f.level, loc.file, loc.line, format_path(f.path),
                                      f.message, f.hint, f.code))
    if any(d.level is Level.ERROR for d in diagnostics):
        raise ProfileError(diagnostics)
    return tuple(diagnostics)
