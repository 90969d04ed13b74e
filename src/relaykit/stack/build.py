"""The entry points commands.build calls for `--format stack` and `--format helm`."""

from __future__ import annotations

from pathlib import Path

from relaykit.errors import Diagnostic
from relaykit.profile.load import LoadedProfile, locate, resolve_extends
from relaykit.profile.yamlsrc import Located
from relaykit.stack.deployment import (
    Backend,
    check_deployable,
    declared_deployment_findings,
    helm_settings,
    stack_settings,
)


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


def build_scale(fmt: str, loaded: LoadedProfile, out_dir: Path) -> Path:
    """Write build/<name>/stack.yml or build/<name>/chart/ into out_dir (the staging dir)."""
    p = loaded.profile
    if Backend(fmt) is Backend.STACK:
        from relaykit.stack.compose import build_stack

        return build_stack(p, stack_settings(p, loaded.resolved), out_dir)
    from relaykit.chart.render import build_chart

    return build_chart(p, helm_settings(p, loaded.resolved), out_dir)
