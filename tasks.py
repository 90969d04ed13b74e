"""relaykit tasks: `invoke --list`, `invoke <task> --help`.

Thin on purpose: options in, a relaykit.commands call, domain errors out as Exit codes
(2 for an invalid profile, 1 otherwise).  `--debug` shows tracebacks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from relaykit import commands
from relaykit.errors import ProfileError, RelaykitError

T = TypeVar("T")

HELP_PROFILE = "shipped profile name (see `invoke profiles`) or path to a .yaml file"


def _run(fn: Callable[[], T], as_json: bool = False) -> T:
    try:
        return fn()
    except ProfileError as exc:
        if os.environ.get("RELAYKIT_DEBUG"):
            raise
        text = exc.to_json() if as_json else exc.render()
        out = sys.stdout if as_json else sys.stderr
        print(text, file=out)
        raise Exit(code=exc.exit_code) from None
    except RelaykitError as exc:
        if os.environ.get("RELAYKIT_DEBUG"):
            raise
        raise Exit(f"error: {exc.render()}", code=exc.exit_code) from None


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors",
            "json": "print diagnostics as JSON (for CI)"})
def validate(c: Context, profile: str = "", strict: bool = False, json: bool = False) -> None:
    """Check a profile: YAML, schema and policy; every problem as FILE:LINE: .path: message."""
    print(_run(lambda: commands.validate(profile, strict=strict, as_json=json), json))


@task(positional=[], help={"profile": HELP_PROFILE})
def show(c: Context, profile: str = "") -> None:
    """Print the resolved profile, after extends: and defaults."""
    print(_run(lambda: commands.show(profile)), end="")


@task
def profiles(c: Context) -> None:
    """List the shipped profiles with their descriptions."""
    rows = commands.list_profiles()
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors"})
def render(c: Context, profile: str = "", strict: bool = False) -> None:
    """Render the profile into build/<name>/rootfs/ (overlay) and build/<name>/postconf/."""
    result = _run(lambda: commands.render_profile(profile, strict=strict))
    print(f"rendered {result.out_dir / 'rootfs'}")


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors",
            "format": "oci, deb, all or none (default: the profile's outputs)",
            "refresh": "rebuild the cached Debian base instead of reusing it",
            "mirror": "Debian mirror URL for the base (default: mmdebstrap's; RELAYKIT_MIRROR)",
            "cache_dir": "base layer cache (default: $XDG_CACHE_HOME/relaykit)"})
def build(c: Context, profile: str = "", format: str | None = None, strict: bool = False,
          refresh: bool = False, mirror: str | None = None,
          cache_dir: str | None = None) -> None:
    """Validate and render the profile, then build its artifacts under build/<name>/."""
    result = _run(lambda: commands.build(
        profile, fmt=format, strict=strict, refresh=refresh, mirror=mirror,
        cache_dir=Path(cache_dir) if cache_dir else None))
    print(f"built {result.out_dir}")


@task(positional=[], help={"profile": HELP_PROFILE, "format": "oci (default) or deb"})
def verify(c: Context, profile: str = "", format: str = "oci") -> None:
    """Boot the built artifact and run the SMTP conformance suite against it (needs root;
    oci: a Docker engine).  Prints a pass/fail table; exits 1 on any failure."""
    ok, table = _run(lambda: commands.verify(profile, fmt=format))
    print(table)
    if not ok:
        raise Exit(code=1)


@task(positional=[], help={
    "profile": HELP_PROFILE,
    "registry": "registry host[:port][/prefix] to prepend to outputs.oci.name",
    "no_tls_verify": "allow a plain-HTTP or self-signed registry (tests)",
    "authfile": "containers auth.json with the registry credentials"})
def publish(c: Context, profile: str = "", registry: str | None = None,
            no_tls_verify: bool = False, authfile: str | None = None) -> None:
    """Push the built image to an OCI registry (skopeo) under every tag of the profile."""
    _run(lambda: commands.publish(profile, registry=registry, tls_verify=not no_tls_verify,
                                  authfile=Path(authfile) if authfile else None))


@task(help={"args": "extra pytest arguments, e.g. '-k policy' or '-m \"not slow\"'"})
def test(c: Context, args: str = "") -> None:
    """Run the whole test suite (unit, integration, ruff, mypy)."""
    c.run(f"{sys.executable} -m pytest {args}", pty=False)


@task
def docs(c: Context) -> None:
    """Regenerate docs/profile-reference.md from schema/profile.schema.json."""
    from relaykit.schemadoc import reference_markdown

    out = Path(__file__).resolve().parent / "docs" / "profile-reference.md"
    out.write_text(reference_markdown())
    print(f"wrote {out}")


# --- golden files and the mutation gate (tests/golden, tests/mutation) -----------------

@task
def golden(c: Context) -> None:
    """Rewrite tests/golden/<profile>/ from the current rendering; review the diff."""
    root = Path(__file__).resolve().parent
    with c.cd(str(root)):
        c.run(f"{sys.executable} -m tests.golden.snapshot", pty=False,
              env={"PYTHONPATH": str(root / "src")})
    print("review with `git diff tests/golden` before committing")


@task(help={"sample": "run a seeded sample of N gated mutants (the CI gate)",
            "seed": "sample seed", "workers": "parallel mutants: 1 or 2 (shared cores)",
            "fail_under": "gate: minimum % of gated mutants killed",
            "file": "only this module, e.g. src/relaykit/render/postfix.py",
            "json": "write figures as JSON here", "md": "write figures as Markdown here",
            "quiet": "no line per mutant"})
def mutation(c: Context, sample: int = 0, seed: int = 14, workers: int = 1,
             fail_under: float = 90.0, file: str = "", json: str = "", md: str = "",
             quiet: bool = False) -> None:
    """Mutation score of the relay-safety modules against tests/unit; exit 1 below the gate."""
    root = Path(__file__).resolve().parent
    args = [f"--seed={seed}", f"--workers={workers}", f"--fail-under={fail_under}"]
    args += [f"--sample={sample}"] if sample else []
    args += [f"--file={file}"] if file else []
    args += [f"--json={json}"] if json else []
    args += [f"--md={md}"] if md else []
    args += ["--quiet"] if quiet else []
    with c.cd(str(root)):
        result = c.run(" ".join([sys.executable, "-m", "tests.mutation.runner", *args]),
                       pty=False, warn=True, env={"PYTHONPATH": str(root / "src")})
    if result is None or result.exited != 0:
        raise Exit(code=1)
