"""build/<name>/chart/: Chart.yaml, values.yaml and templates/_profile.tpl from the profile;
the rest (templates, values.schema.json) is static package data in files/.

What the profile fixes (the ports the image listens on, which secret keys it reads) goes
into _profile.tpl, not values.yaml: a value would suggest it can be changed without
rebuilding the image.  values.yaml holds the deployment's choices, defaulted from the
profile's outputs.helm, each bounded by values.schema.json.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from relaykit.errors import RelaykitError
from relaykit.profile.model import HelmOutput, Listener, Profile
from relaykit.stack.deployment import (
    CAPABILITIES,
    HEALTHCHECK,
    HEALTHCHECK_TIMEOUT_S,
    public_listeners,
    runtime_secrets,
)

FILES = Path(__file__).resolve().parent / "files"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
SMTP_NEXT_HOP_PORTS = (25, 465, 587)


def chart_version(version: str) -> str:
    """Helm wants SemVer 2: 1.0 -> 1.0.0; anything else must already be SemVer."""
    if SEMVER.match(version):
        return version
    if re.fullmatch(r"\d+\.\d+", version):
        return f"{version}.0"
    if re.fullmatch(r"\d+", version):
        return f"{version}.0.0"
    raise RelaykitError(f"profile version {version!r} is not a SemVer 2 version, which a "
                        "Helm chart needs", hint="use MAJOR.MINOR.PATCH, e.g. 1.0.0")


def port_name(lis: Listener) -> str:
    """IANA_SVC_NAME: at most 15 characters."""
    return lis.name if len(lis.name) <= 15 else f"smtp-{lis.port}"


def _relayhost_port(p: Profile) -> int | None:
    host = p.outbound.relayhost
    if host and re.search(r":(\d+)$", host):
        return int(host.rsplit(":", 1)[1])
    return None


def chart_yaml(p: Profile) -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": p.name,
        "description": p.description,
        "type": "application",
        "version": chart_version(p.version),
        "appVersion": p.version,
        "kubeVersion": ">=1.25.0-0",
        "keywords": ["smtp", "postfix", "relay", "sasl"],
        "annotations": {"relaykit.io/profile": p.name},
    }


def values(p: Profile, h: HelmOutput) -> dict[str, Any]:
    assert p.oci is not None
    tags = [t for t in p.oci.tags if t != "latest"] or list(p.oci.tags)
    r = h.resources
    egress = sorted(set(SMTP_NEXT_HOP_PORTS) | {port for port in [_relayhost_port(p)] if port})
    return {
        "replicas": h.replicas,
        "image": {"repository": p.oci.name, "tag": tags[0], "digest": "",
                  "pullPolicy": "IfNotPresent"},
        "relay": {"myhostname": "", "relayhost": None, "tls": p.tls.managed},
        "secrets": {"existingSecret": "", "tlsSecret": "", "revision": "1"},
        "service": {"type": h.service_type, "annotations": {},
                    "loadBalancerSourceRanges": []},
        "persistence": {"sizeGi": h.queue_storage_gib, "storageClassName": h.storage_class or ""},
        "resources": {
            "limits": {"cpu": f"{r.cpu_millicores}m", "memory": f"{r.memory_mib}Mi"},
            "requests": {"cpu": f"{r.cpu_request_millicores}m",
                         "memory": f"{r.memory_request_mib}Mi"}},
        "terminationGracePeriodSeconds": h.termination_grace_s,
        "probes": {
            "command": list(HEALTHCHECK),
            "timeoutSeconds": HEALTHCHECK_TIMEOUT_S,
            "startup": {"periodSeconds": 5, "failureThreshold": 24},
            "readiness": {"periodSeconds": 10, "failureThreshold": 2},
            "liveness": {"periodSeconds": 30, "failureThreshold": 3},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)},
        },
        "writablePaths": [],
        "networkPolicy": {"enabled": True, "ingressFrom": [], "egressTo": [],
                          "smtpEgressPorts": egress},
        "nodeSelector": {},
        "tolerations": [],
    }


def profile_tpl(p: Profile) -> str:
    """Named templates for what the image fixes: its ports and the secret keys it reads."""
    listeners = public_listeners(p)
    container = "".join(f"- name: {port_name(lis)}\n  containerPort: {lis.port}\n"
                        "  protocol: TCP\n" for lis in listeners)
    service = "".join(f"- name: {port_name(lis)}\n  port: {lis.port}\n"
                      f"  targetPort: {port_name(lis)}\n  protocol: TCP\n"
                      for lis in listeners)
    policy = "".join(f"- protocol: TCP\n  port: {lis.port}\n" for lis in listeners)
    items = "".join(f"- key: {f.key}\n  path: {f.key}\n" for f in runtime_secrets(p)
                    if f.key not in ("tls.crt", "tls.key"))
    parts = [("relaykit.containerPorts", container), ("relaykit.servicePorts", service),
             ("relaykit.policyPorts", policy), ("relaykit.secretItems", items)]
    head = (f"{{{{/* Generated by relaykit from profile {p.name} {p.version}: what the image "
            "fixes. Change the profile, not this file. */}}\n")
    return head + "".join(f'{{{{- define "{name}" -}}}}\n{body.rstrip()}\n{{{{- end -}}}}\n\n'
                          for name, body in parts)


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


VALUES_HEADER = """\
# Deployment settings of the {name} relay chart, defaulted from profile {name} {version}.
# values.schema.json bounds every value.  Required: secrets.existingSecret, a Secret with
# the keys {keys}.
"""


def build_chart(p: Profile, h: HelmOutput, out_dir: Path) -> Path:
    chart = out_dir / "chart"
    shutil.copytree(FILES, chart)
    (chart / "Chart.yaml").write_text(_dump(chart_yaml(p)))
    keys = ", ".join(f.key for f in runtime_secrets(p))
    (chart / "values.yaml").write_text(
        VALUES_HEADER.format(name=p.name, version=p.version, keys=keys) + _dump(values(p, h)))
    (chart / "templates" / "_profile.tpl").write_text(profile_tpl(p))
    return chart
