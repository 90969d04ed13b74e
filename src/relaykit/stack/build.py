"""The entry points of `--format stack` and `--format helm` for relaykit.commands.

build_stack/build_helm, stack_artifact/helm_artifact and verify_deployment have the shapes
of a commands Backend's build, artifact and verify; check_scale runs before anything is
built, with the profile's locations for FILE:LINE.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from relaykit.errors import Diagnostic, RelaykitError
from relaykit.profile.load import LoadedProfile, locate, resolve_extends
from relaykit.profile.model import Profile
from relaykit.profile.yamlsrc import Located
from relaykit.stack.deployment import (
    Backend,
    check_deployable,
    declared_deployment_findings,
    helm_settings,
    stack_settings,
)

if TYPE_CHECKING:
    from relaykit.buildinfo import BuildInputs
    from relaykit.render.postfix import Rendered

from relaykit.ui import Log


def check_scale(ref: str, loaded: LoadedProfile, formats: tuple[str, ...]
                ) -> tuple[Diagnostic, ...]:
    """Deployment checks for the formats asked for, pinned to the profile's FILE:LINE.

    Once policy runs declared_deployment_findings itself (registered in its CHECKS), the
    declared sections were checked by load_profile already: only the undeclared ones,
    built with defaults, are left to check here."""
    from relaykit.profile import policy

    backends = tuple(Backend(f) for f in formats)
    if declared_deployment_findings in policy.CHECKS:
        outputs = loaded.resolved.get("outputs") or {}
        backends = tuple(b for b in backends if b.value not in outputs)
    if not backends:
        return ()
    sources = resolve_extends(locate(ref), chain=())  # for the locations only
    located = Located(loaded.resolved, sources.locs, sources.file)
    return check_deployable(located, backends)


def build_stack(p: Profile, rendered: Rendered | None, inputs: BuildInputs | None,
                stage: Path, refresh: bool = False, log: Log | None = None) -> Path:
    """build/<name>/stack.yml (written into the staging dir)."""
    from relaykit.stack.compose import write_stack

    return write_stack(p, stack_settings(p), stage)


def build_helm(p: Profile, rendered: Rendered | None, inputs: BuildInputs | None,
               stage: Path, refresh: bool = False, log: Log | None = None) -> Path:
    """build/<name>/chart/ (written into the staging dir)."""
    from relaykit.chart.render import build_chart

    return build_chart(p, helm_settings(p), stage)


def stack_artifact(p: Profile, out_dir: Path) -> Path | None:
    path = out_dir / "stack.yml"
    return path if path.is_file() else None


def helm_artifact(p: Profile, out_dir: Path) -> Path | None:
    path = out_dir / "chart" / "Chart.yaml"
    return path.parent if path.is_file() else None


def verify_deployment(p: Profile, artifact: Path, log: Log) -> tuple[bool, str]:
    raise RelaykitError(f"`verify` does not deploy {artifact.name}: a stack needs a Swarm "
                        "and a chart a cluster",
                        hint="verify the image (--format oci); the deployment is tested by "
                             "tests/integration/test_swarm.py and tests/unit/test_chart.py "
                             "(docs/scale.md)")
