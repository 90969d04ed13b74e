"""The relaykit command line: invoke tasks, installed as `relaykit`, loaded by tasks.py.

Thin on purpose: options in, a relaykit.commands call, results on stdout, errors out as
exit codes (2 for an invalid profile, 1 otherwise) with a message and a hint on stderr,
never a traceback unless asked: `relaykit --debug ...`, `invoke --debug ...` or
RELAYKIT_DEBUG=1.  Progress goes through relaykit.ui (`--verbose`, RELAYKIT_VERBOSE=1).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit, Failure, ParseError
from invoke.parser.argument import Argument
from invoke.program import Program
from invoke.tasks import task

from relaykit import __version__, commands, debian, ui
from relaykit.errors import ProfileError, RelaykitError
from relaykit.paths import project_root

T = TypeVar("T")

HELP_PROFILE = "shipped profile name (see `profiles`) or path to a .yaml file"
DEBUG_HINT = "rerun with --debug (or RELAYKIT_DEBUG=1) to see the traceback"
LOCK_FILE = Path("requirements") / "dev.lock"
LOCK_INPUT = Path("requirements") / "dev.in"
LOCK_PYTHON = "3.11"  # the oldest Python relaykit supports (pyproject requires-python)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _traceback_if_asked() -> None:
    if ui.debug_enabled():
        traceback.print_exc(file=sys.stderr)


def _run(fn: Callable[[], T], as_json: bool = False) -> T:
    """Call fn; turn every exception into a message, a hint and an exit code."""
    try:
        return fn()
    except ProfileError as exc:
        _traceback_if_asked()
        text = exc.to_json() if as_json else exc.render()
        print(text, file=sys.stdout if as_json else sys.stderr)
        raise Exit(code=exc.exit_code) from None
    except RelaykitError as exc:
        _traceback_if_asked()
        raise Exit(f"error: {exc.render()}", code=exc.exit_code) from None
    except (Exit, Failure, ParseError):
        raise  # invoke's own: it prints them and exits with their code
    except OSError as exc:
        # The machine said no (permissions, disk full, missing tool): not a relaykit bug.
        _traceback_if_asked()
        where = f": {exc.filename}" if exc.filename else ""
        raise Exit(f"error: {exc.strerror or exc}{where}\n  hint: check the path, its "
                   f"permissions and free space; {DEBUG_HINT}", code=1) from None
    except Exception as exc:
        _traceback_if_asked()
        raise Exit(f"internal error: {type(exc).__name__}: {_first_line(str(exc))}\n"
                   f"  hint: this is a bug in relaykit; {DEBUG_HINT} and report it",
                   code=1) from None


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors",
            "json": "print diagnostics as JSON (for CI)"})
def validate(c: Context, profile: str = "", strict: bool = False, json: bool = False) -> None:
    """Check a profile: YAML, schema and policy.

    Reports every problem at once, each as FILE:LINE: .path: message with a hint;
    exit code 2 when the profile is invalid.
    """
    print(_run(lambda: commands.validate(profile, strict=strict, as_json=json), json))


@task(positional=[], help={"profile": HELP_PROFILE})
def show(c: Context, profile: str = "") -> None:
    """Print the resolved profile, after extends: and defaults."""
    print(_run(lambda: commands.show(profile)), end="")


@task
def profiles(c: Context) -> None:
    """List the shipped profiles with their descriptions."""
    rows = _run(commands.list_profiles)
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors"})
def render(c: Context, profile: str = "", strict: bool = False) -> None:
    """Render the profile's files into build/<name>/rootfs/."""
    result = _run(lambda: commands.render_profile(profile, strict=strict))
    print(f"rendered {result.out_dir / 'rootfs'}")


@task(positional=[], help={"profile": HELP_PROFILE, "strict": "treat warnings as errors",
            "format": f"{commands.FORMAT_CHOICES}: image, package, Swarm stack, Helm chart; "
                      "all = oci and deb (default: the profile's outputs)",
            "refresh": "rebuild the cached Debian base instead of reusing it",
            "mirror": "Debian mirror URL for the base (default: mmdebstrap's; RELAYKIT_MIRROR)",
            "cache_dir": "base layer cache (default: $XDG_CACHE_HOME/relaykit)"})
def build(c: Context, profile: str = "", format: str | None = None, strict: bool = False,
          refresh: bool = False, mirror: str | None = None,
          cache_dir: str | None = None) -> None:
    """Build the profile's artifacts into build/<name>/.

    Validates and renders first; build/<name>/ changes only when everything succeeded.
    """
    result = _run(lambda: commands.build(
        profile, fmt=format, strict=strict, refresh=refresh, mirror=mirror,
        cache_dir=Path(cache_dir) if cache_dir else None))
    print(f"built {result.out_dir}")


@task(positional=[], help={"profile": HELP_PROFILE,
                           "format": " or ".join(commands.Format) + " (default: oci)"})
def verify(c: Context, profile: str = "", format: str = commands.Format.OCI.value) -> None:
    """Boot the built artifact, run the SMTP conformance suite.

    Needs root and a running Docker engine. Prints a pass/fail table; exits 1 on any
    failure.
    """
    ok, table = _run(lambda: commands.verify(profile, fmt=format))
    if table:
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
    """Push the built image to an OCI registry, under every tag."""
    _run(lambda: commands.publish(profile, registry=registry, tls_verify=not no_tls_verify,
                                  authfile=Path(authfile) if authfile else None))


@task(positional=[], iterable=["profile", "deb"], help={
    "dir": "repository directory (created; packages already there stay)",
    "key": "gpg key to sign with (fingerprint, key id or user id)",
    "profile": "profile whose built .deb to add (repeatable)",
    "deb": "a .deb file to add (repeatable)",
    "gnupghome": "gpg home holding the secret key (default: GNUPGHOME or ~/.gnupg)"})
def publish_apt(c: Context, dir: str = "", key: str = "", profile: list[str] | None = None,
                deb: list[str] | None = None, gnupghome: str | None = None) -> None:
    """Write a signed flat apt repository of built .debs."""
    from relaykit.deb.aptrepo import built_debs, write_repo

    def go() -> Path:
        if not dir:
            raise RelaykitError("no repository directory", hint="--dir DIR")
        debs = built_debs(profile or []) + [Path(d) for d in deb or []]
        return write_repo(debs, Path(dir), key=key,
                          gnupghome=Path(gnupghome) if gnupghome else None)
    print(f"wrote {_run(go)}")


@task(help={"args": "extra pytest arguments, e.g. '-k policy' or '-m \"not slow\"'"})
def test(c: Context, args: str = "") -> None:
    """Run the test suite, ruff and mypy (in a clone)."""
    root = _run(project_root)
    with c.cd(str(root)):
        c.run(f"{sys.executable} -m pytest {args}", pty=False)


@task
def docs(c: Context) -> None:
    """Regenerate docs/profile-reference.md (in a clone)."""
    from relaykit.schemadoc import reference_markdown

    out = _run(project_root) / "docs" / "profile-reference.md"
    out.write_text(_run(reference_markdown))
    print(f"wrote {out}")


def lock_command() -> str:
    """The command that writes requirements/dev.lock (also written into its header)."""
    return (f"{sys.executable} -m uv pip compile --quiet --universal "
            f"--python-version {LOCK_PYTHON} --generate-hashes --extra test "
            f"--custom-compile-command 'invoke lock-deps' "
            f"--output-file {LOCK_FILE} pyproject.toml {LOCK_INPUT}")


@task(help={"upgrade": "move every pin to the newest allowed release"})
def lock_deps(c: Context, upgrade: bool = False) -> None:
    """Regenerate the hashed requirements/dev.lock (in a clone).

    Needs uv (it is in the lock) and the package index. Keeps existing pins unless
    --upgrade; commit the new lock, ./bootstrap reinstalls when it changes.
    """
    root = _run(project_root)
    with c.cd(str(root)):
        c.run(lock_command() + (" --upgrade" if upgrade else ""), pty=False)
    print(f"wrote {root / LOCK_FILE}")


@task(help={"suite": f"Debian suite (default: {debian.DEFAULT_SUITE})",
            "architecture": "dpkg architecture (default: the build host's)",
            "add": "comma-separated extra packages to resolve too (profiles' extra_packages)",
            "mirror": "Debian mirror URL (default: mmdebstrap's; RELAYKIT_MIRROR)",
            "cache_dir": "where the .debs are kept (default: $XDG_CACHE_HOME/relaykit)"})
def lock(c: Context, suite: str = debian.DEFAULT_SUITE, architecture: str | None = None,
         add: str = "", mirror: str | None = None, cache_dir: str | None = None) -> None:
    """Pin the image base's packages in a lock file.

    Resolves the base on the mirror now and keeps its .debs, so pinned rebuilds need no
    network. Commit the lock.
    """
    changes = _run(lambda: commands.lock(
        suite=suite, architecture=architecture,
        add=tuple(x.strip() for x in add.split(",") if x.strip()), mirror=mirror,
        cache_dir=Path(cache_dir) if cache_dir else None))
    print("\n".join(changes) if changes else "no change")


@task(positional=[], help={
    "profile": HELP_PROFILE,
    "public_key": "the ed25519 public key (PEM) whose private half signed the build",
    "archive": "an image archive to check instead of build/<name>/<name>.oci.tar"})
def verify_provenance(c: Context, profile: str = "", public_key: str = "",
                      archive: str | None = None) -> None:
    """Check an image's signed provenance.

    The provenance must be signed by this key and name this image.
    """
    if not public_key:
        raise Exit("error: --public-key is required", code=1)
    for line in _run(lambda: commands.verify_provenance(
            profile, public_key=Path(public_key),
            archive=Path(archive) if archive else None)):
        print(line)


# --- golden files and the mutation gate (tests/golden, tests/mutation) -----------------

@task
def golden(c: Context) -> None:
    """Rewrite the golden rendered files (in a clone)."""
    root = _run(project_root)
    with c.cd(str(root)):
        c.run(f"{sys.executable} -m tests.golden.snapshot", pty=False,
              env={"PYTHONPATH": str(root / "src")})
    print("review with `git diff tests/golden` before committing")


@task(help={"sample": "run a seeded sample of N gated mutants (the CI gate)",
            "seed": "sample seed", "workers": "parallel mutants: 1 or 2 (shared cores)",
            "fail_under": "gate: minimum % of gated mutants killed",
            "file": "only this module, e.g. src/relaykit/render/postfix.py",
            "json": "write figures as JSON here", "md": "write figures as Markdown here",
            "quiet": "no line per mutant",
            "reuse_kills": "count mutants this earlier --json run killed, in files unchanged "
                           "since, as killed (repeatable)",
            "only": "only this mutant id (repeatable)"},
      iterable=["reuse_kills", "only"])
def mutation(c: Context, sample: int = 0, seed: int = 14, workers: int = 1,
             fail_under: int = 90, file: str = "", json: str = "", md: str = "",
             quiet: bool = False, reuse_kills: list[str] | None = None,
             only: list[str] | None = None) -> None:
    """Mutation score of the relay-safety code (in a clone)."""
    root = _run(project_root)
    args = [f"--seed={seed}", f"--workers={workers}", f"--fail-under={fail_under}"]
    args += [f"--sample={sample}"] if sample else []
    args += [f"--file={file}"] if file else []
    args += [f"--reuse-kills={shlex.quote(f)}" for f in reuse_kills or ()]
    args += [f"--only={shlex.quote(m)}" for m in only or ()]
    args += [f"--json={json}"] if json else []
    args += [f"--md={md}"] if md else []
    args += ["--quiet"] if quiet else []
    with c.cd(str(root)):
        result = c.run(" ".join([sys.executable, "-m", "tests.mutation.runner", *args]),
                       pty=False, warn=True, env={"PYTHONPATH": str(root / "src")})
    if result is None or result.exited != 0:
        raise Exit(code=1)


namespace = Collection(validate, show, profiles, render, build, verify, publish, publish_apt,
                       test, docs, lock_deps, lock, verify_provenance, golden, mutation)

# Core options `relaykit --help` shows; the others (invoke's, for running shell
# commands) still work but are not relaykit's business.
SHOWN_CORE_OPTIONS = ("debug", "verbose", "help", "list", "version",
                      "print-completion-script")


class RelaykitProgram(Program):
    """invoke's Program with --verbose, a real --debug, and a shorter --help."""

    def core_args(self) -> list[Argument]:
        args = super().core_args()
        for arg in args:
            if arg.name == "debug":
                arg.help = "Show tracebacks (RELAYKIT_DEBUG=1 does the same)."
        return [*args, Argument(
            names=("verbose", "v"), kind=bool, default=False,
            help="Show progress of long steps even when not on a terminal.")]

    def parse_core(self, argv: list[str] | None) -> None:
        super().parse_core(argv)
        debug = bool(self.args.debug.value)
        ui.configure(verbose=True if self.args.verbose.value else None,
                     debug=True if debug else None)
        if debug and not os.environ.get("INVOKE_DEBUG"):
            # invoke --debug also logs its own parsing; relaykit --debug means tracebacks.
            logging.getLogger("invoke").setLevel(logging.INFO)

    def print_help(self) -> None:
        print(f"Usage: {self.binary} [--core-opts] <subcommand> [--subcommand-opts] ...")
        print(f"       {self.binary} --help <subcommand>   (every option of a subcommand)")
        print("\nCore options:\n")
        shown = re.compile(r"--(" + "|".join(map(re.escape, SHOWN_CORE_OPTIONS)) + r")(?![\w-])")
        self.print_columns([t for t in self.initial_context.help_tuples()
                            if shown.search(t[0])])
        self.list_tasks()


program = RelaykitProgram(name="relaykit", binary="relaykit", namespace=namespace,
                          version=__version__)


def main() -> None:
    """Console entry point (pyproject [project.scripts])."""
    try:
        program.run()
        sys.stdout.flush()
    except BrokenPipeError:
        # `relaykit show ... | head`: the reader left; that is not an error worth a trace.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
