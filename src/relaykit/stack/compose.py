"""`--format stack`: build/<name>/stack.yml, a Compose file (3.8) for `docker stack deploy`.

Every choice here answers a failure measured on a real Swarm:
- one queue volume per task slot (a volume *named* `<name>-queue-{{.Task.Slot}}`: the
  template is refused as a volume key, and so is a mount of an undeclared volume): two
  Postfix on one queue crash-loop on saslauthd's pid lock and "mail system is already
  running", and a replacement task finds its predecessor's queue by its slot;
- updates and rollbacks `stop-first`, one task at a time: `start-first` would run the new
  task on the old one's queue;
- host-mode published ports, one task per node: ingress publishing needs IPVS and makes
  every client arrive from the ingress network (SNAT), i.e. look internal;
- `endpoint_mode: dnsrr`: the service name resolves to every task (SMTP clients try the
  next address), and no virtual IP that needs IPVS;
- secrets are external: `docker secret create` puts them in the Raft store, never in this
  file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from relaykit.profile.model import Profile, StackOutput
from relaykit.stack.deployment import (
    CAPABILITIES,
    HEALTHCHECK,
    HEALTHCHECK_RETRIES,
    HEALTHCHECK_START_S,
    HEALTHCHECK_TIMEOUT_S,
    QUEUE_DIR,
    image_ref,
    public_listeners,
    runtime_secrets,
)

SERVICE = "relay"
NETWORK = "relay"
QUEUE = "queue"
COMPOSE_VERSION = "3.8"  # placement.max_replicas_per_node


class FileMode(int):
    """A file mode, written in octal as Compose files (YAML 1.1) read it: 0400."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    FileMode, lambda d, v: d.represent_scalar("tag:yaml.org,2002:int", f"0{v:o}"))


def secret_name(p: Profile, key: str) -> str:
    """The Swarm secret a deployment creates: <profile>-<key>, dots as dashes."""
    return f"{p.name}-{key.replace('.', '-')}"


def queue_volume(p: Profile, s: StackOutput) -> str:
    """Per task slot (replicated); per node (global: one task per node)."""
    if s.mode == "global":
        return f"{p.name}-queue"
    return f"{p.name}-queue-{{{{.Task.Slot}}}}"


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def _service(p: Profile, s: StackOutput) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": image_ref(p),
        "secrets": [{"source": secret_name(p, f.key), "target": f.key, "uid": "0",
                     "gid": "0", "mode": FileMode(0o400 if f.private else 0o444)}
                    for f in runtime_secrets(p)],
        "volumes": [{"type": "volume", "source": QUEUE, "target": QUEUE_DIR}],
        "healthcheck": {
            "test": ["CMD", *HEALTHCHECK],
            "interval": _duration(s.healthcheck_interval_s),
            "timeout": _duration(HEALTHCHECK_TIMEOUT_S),
            "retries": HEALTHCHECK_RETRIES,
            "start_period": _duration(HEALTHCHECK_START_S),
        },
        # Honoured by `docker stack deploy` since Docker 20.10 (measured).
        "cap_drop": ["ALL"],
        "cap_add": list(CAPABILITIES),
        "stop_signal": "SIGTERM",
        "stop_grace_period": _duration(s.stop_grace_period_s),
        "networks": [NETWORK],
        "deploy": _deploy(p, s),
    }
    if s.publish == "host":
        service["ports"] = [{"target": lis.port, "published": lis.port, "protocol": "tcp",
                             "mode": "host"} for lis in public_listeners(p)]
    return service


def _deploy(p: Profile, s: StackOutput) -> dict[str, Any]:
    one_at_a_time = {"parallelism": 1, "delay": "5s", "order": "stop-first",
                     "failure_action": "pause", "monitor": _duration(
                         HEALTHCHECK_START_S + s.healthcheck_interval_s * HEALTHCHECK_RETRIES)}
    r = s.resources
    deploy: dict[str, Any] = {
        "mode": s.mode,
        **({"replicas": s.replicas} if s.mode == "replicated" else {}),
        "endpoint_mode": "dnsrr",
        "update_config": {**one_at_a_time, "failure_action": "rollback"},
        "rollback_config": one_at_a_time,
        "restart_policy": {"condition": "any", "delay": "5s", "window": "60s"},
        "resources": {
            "limits": {"cpus": f"{r.cpu_millicores / 1000:g}", "memory": f"{r.memory_mib}M"},
            "reservations": {"cpus": f"{r.cpu_request_millicores / 1000:g}",
                             "memory": f"{r.memory_request_mib}M"},
        },
        "labels": {"org.opencontainers.image.title": p.name, "relaykit.profile": p.name,
                   "relaykit.version": p.version},
    }
    if s.publish == "host" and s.mode == "replicated":
        # Two tasks on one node cannot both bind the published ports.
        deploy["placement"] = {"max_replicas_per_node": 1}
    return deploy


def stack_document(p: Profile, s: StackOutput) -> dict[str, Any]:
    return {
        "version": COMPOSE_VERSION,
        "services": {SERVICE: _service(p, s)},
        "networks": {NETWORK: {"driver": "overlay"}},
        # The per-slot template is a volume's name: Swarm expands it per task.
        "volumes": {QUEUE: {"name": queue_volume(p, s)}},
        "secrets": {secret_name(p, f.key): {"external": True} for f in runtime_secrets(p)},
    }


def header(p: Profile) -> str:
    lines = [f"Generated by relaykit from profile {p.name} {p.version} "
             f"({Path(p.source_file).name}); change the profile, not this file.",
             "Before `docker stack deploy --compose-file stack.yml <stack>`, create the "
             "secrets:"]
    lines += [f"  docker secret create {secret_name(p, f.key)} FILE   # {f.what}"
              for f in runtime_secrets(p)]
    lines.append("Secrets are immutable: to change one, create a new name and redeploy.")
    return "".join(f"# {line}\n" for line in lines)


def render_stack(p: Profile, s: StackOutput) -> str:
    body = yaml.dump(stack_document(p, s), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)
    return header(p) + body


def write_stack(p: Profile, s: StackOutput, out_dir: Path) -> Path:
    out = out_dir / "stack.yml"
    out.write_text(render_stack(p, s))
    return out
