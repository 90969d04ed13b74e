"""The task layer as a user runs it: exit codes, messages, and nothing written on error."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from relaykit import cli, commands, paths, ui
from relaykit.errors import RelaykitError

from ..conftest import ROOT


def invoke(*args: str, build: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELAYKIT_BUILD_DIR": str(build)}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_validate_broken_profile_exits_2_with_file_line_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: roaming\nname: bad\nrestrictions:\n  relay: [permit]\n")
    build = tmp_path / "build"
    for task in ("validate", "render", "build"):
        proc = invoke(task, "--profile", str(bad), build=build)
        assert proc.returncode == 2, proc.stderr
        assert f"{bad}:4: .restrictions.relay[0]: open relay" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not build.exists()


def test_validate_json_for_ci(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    proc = invoke("validate", "--profile", str(bad), "--json", build=tmp_path / "b")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert {d["code"] for d in report["diagnostics"]} == {"required"}


def test_render_writes_exactly_the_image_overlay(tmp_path: Path) -> None:
    from relaykit.profile.load import load_profile
    from relaykit.render.overlay import image_overlay
    from relaykit.render.postfix import render

    build = tmp_path / "build"
    proc = invoke("render", "--profile", "roaming", build=build)
    assert proc.returncode == 0, proc.stderr
    rootfs = build / "roaming/rootfs"
    written = sorted("/" + str(p.relative_to(rootfs)) for p in rootfs.rglob("*"))
    overlay = image_overlay(render(load_profile("roaming").profile))
    assert written == sorted(path for path in overlay.with_parents() if path != "/")
    assert "-o smtpd_tls_security_level=encrypt" in (rootfs / "etc/postfix/master.cf").read_text()
    assert sorted(p.name for p in build.iterdir()) == ["roaming"]  # no staging leftovers


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    proc = invoke("validate", "--profile", "gazette-2007", "--strict", build=tmp_path / "b")
    assert proc.returncode == 2
    assert "warning: DIGEST-MD5 is historic" in proc.stderr


def test_show_prints_resolved_profile_with_defaults(tmp_path: Path) -> None:
    proc = invoke("show", "--profile", "roaming", build=tmp_path / "b")
    assert proc.returncode == 0
    assert "suite: trixie" in proc.stdout and "message_size_limit:" in proc.stdout


def test_profiles_lists_shipped(tmp_path: Path) -> None:
    proc = invoke("profiles", build=tmp_path / "b")
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "gazette-2007", "roaming", "satellite"]


# --- the installed command and invoke in the clone ------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The environment without switches that change output (a CI job may set them)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RELAYKIT_DEBUG", "RELAYKIT_VERBOSE", "INVOKE_DEBUG", "CI")}
    return {**env, **extra}


def relaykit(*args: str, build: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relaykit", *args], cwd=ROOT,
                          env=clean_env(RELAYKIT_BUILD_DIR=str(build), **env),
                          capture_output=True, text=True, timeout=120)


def bad_profile(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: roaming\nname: bad\nrestrictions:\n  relay: [permit]\n")
    return bad


def test_debug_shows_traceback_with_the_same_message_and_exit_code(tmp_path: Path) -> None:
    bad = bad_profile(tmp_path)
    build = tmp_path / "build"
    runs = {
        "invoke --debug": subprocess.run(
            [sys.executable, "-m", "invoke", "--debug", "validate", "--profile", str(bad)],
            cwd=ROOT, env=clean_env(RELAYKIT_BUILD_DIR=str(build)), capture_output=True,
            text=True, timeout=120),
        "relaykit --debug": relaykit("--debug", "validate", "--profile", str(bad), build=build),
        "RELAYKIT_DEBUG=1": relaykit("validate", "--profile", str(bad), build=build,
                                     RELAYKIT_DEBUG="1"),
    }
    for how, proc in runs.items():
        assert proc.returncode == 2, how
        assert "Traceback (most recent call last)" in proc.stderr, how
        assert re.search(r'File ".*/relaykit/[\w/]+\.py"', proc.stderr), how  # the raise
        assert f"{bad}:4: .restrictions.relay[0]: open relay" in proc.stderr, how
    # relaykit --debug means tracebacks, not invoke's parser log.
    assert "argv given to Program.run" not in runs["relaykit --debug"].stderr
    plain = relaykit("validate", "--profile", str(bad), build=build)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr


def test_relaykit_and_invoke_offer_the_same_tasks(tmp_path: Path) -> None:
    names = []
    for proc in (relaykit("--list", build=tmp_path),
                 invoke("--list", build=tmp_path)):
        assert proc.returncode == 0, proc.stderr
        names.append([line.split()[0] for line in proc.stdout.splitlines()
                      if line.startswith("  ") and line.strip()])
    assert names[0] == names[1]
    assert {"validate", "build", "verify", "publish", "lock-deps"} <= set(names[0])


def test_list_shows_each_task_on_one_whole_line(tmp_path: Path) -> None:
    proc = invoke("--list", build=tmp_path)
    rows = [line for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert rows, proc.stdout
    for line in rows:
        _name, _, summary = line.strip().partition(" ")
        # A wrapped row leaves a continuation line holding no task name.
        assert line.startswith("  ") and not line.startswith("   "), f"wrapped: {line!r}"
        assert summary.strip().endswith("."), f"cut summary: {line!r}"


def test_help_shows_subcommands_and_relaykit_flags(tmp_path: Path) -> None:
    proc = relaykit("--help", build=tmp_path)
    assert proc.returncode == 0
    assert "--verbose" in proc.stdout and "--debug" in proc.stdout
    assert "--prompt-for-sudo-password" not in proc.stdout  # invoke's, not relaykit's
    assert "  validate " in proc.stdout and "  build " in proc.stdout


def test_version(tmp_path: Path) -> None:
    from relaykit import __version__

    proc = relaykit("--version", build=tmp_path)
    assert proc.stdout.strip() == f"relaykit {__version__}"


# --- errors: a message and a hint, never a traceback unless asked ---------------------

@pytest.fixture(autouse=True)
def reset_ui() -> Iterator[None]:
    yield
    ui.configure()


def test_unexpected_exception_is_one_line_internal_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: object, **_k: object) -> str:
        raise ValueError("surprise\nsecond line")

    monkeypatch.setattr(commands, "validate", broken)
    monkeypatch.delenv("RELAYKIT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.program.run(["relaykit", "validate", "--profile", "roaming"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.startswith("internal error: ValueError: surprise")
    assert "second line" not in err  # one line: the rest is for --debug
    assert "rerun with --debug" in err and "Traceback" not in err

    with pytest.raises(SystemExit) as exit_:
        cli.program.run(["relaykit", "--debug", "validate", "--profile", "roaming"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert "internal error: ValueError" in err


def test_os_error_names_the_file_without_traceback() -> None:
    with pytest.raises(Exit) as exc:
        cli._run(lambda: Path("/nonexistent-rk-cli/x").read_text())
    assert exc.value.code == 1
    assert str(exc.value.message).startswith(
        "error: No such file or directory: /nonexistent-rk-cli/x")


def test_relaykit_error_keeps_its_hint_and_code() -> None:
    with pytest.raises(Exit) as exc:
        cli._run(lambda: commands.resolve_formats("tarball", ()))
    assert exc.value.code == 1
    assert exc.value.message == ("error: unknown format 'tarball'\n"
                                 "  hint: use oci, deb, stack, helm, all, none")


def test_verbose_flag_turns_progress_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYKIT_VERBOSE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert not ui.progress_enabled()
    cli.program.run(["relaykit", "--verbose", "profiles"], exit=False)
    assert ui.progress_enabled()


# --- formats: one enum, one backend each ----------------------------------------------

def test_every_format_has_a_backend() -> None:
    assert set(commands.BACKENDS) == set(commands.Format)
    for fmt, backend in commands.BACKENDS.items():
        assert backend.format is fmt


def test_format_selection() -> None:
    Format = commands.Format
    assert commands.resolve_formats("all", ()) == (Format.OCI, Format.DEB)
    assert commands.resolve_formats("none", ("oci",)) == ()
    assert commands.resolve_formats("deb", ("oci",)) == (Format.DEB,)
    assert commands.resolve_formats(None, ("oci", "deb")) == (Format.OCI, Format.DEB)
    with pytest.raises(RelaykitError, match="unknown format 'OCI'"):
        commands.resolve_formats("OCI", ())


def test_verify_without_a_build_says_how_to_build(build_dir: Path) -> None:
    with pytest.raises(RelaykitError) as exc:
        commands.verify("roaming", fmt="oci")
    assert "no oci artifact of 'roaming'" in exc.value.message
    assert exc.value.hint == "run: relaykit build --profile roaming --format oci"
    with pytest.raises(RelaykitError, match="unknown format 'rpm'"):
        commands.verify("roaming", fmt="rpm")


def test_build_refuses_a_format_the_profile_does_not_declare(
        build_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deb = commands.BACKENDS[commands.Format.DEB]
    monkeypatch.setitem(commands.BACKENDS, commands.Format.DEB,
                        dataclasses.replace(deb, declared=lambda _p: False))
    with pytest.raises(RelaykitError) as exc:
        commands.build("satellite", fmt="deb")
    assert "declares no outputs.deb" in exc.value.message
    assert exc.value.hint == deb.missing_hint
    assert not build_dir.exists()


# --- where data and output live ---------------------------------------------------------

def test_clone_data_is_found_at_the_top_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYKIT_HOME", raising=False)
    assert paths.checkout() == ROOT
    assert paths.schema_file() == ROOT / "schema" / "profile.schema.json"
    assert paths.profiles_dir() == ROOT / "profiles"
    assert paths.static_rootfs_dir() == ROOT / "rootfs"
    assert [d for d in paths.DATA_DIRS if not (ROOT / d).is_dir()] == []


def test_installed_without_data_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "checkout", lambda: None)
    # An editable install has no relaykit/_data: the lookup must not invent one.
    with pytest.raises(RelaykitError, match="data files are missing"):
        paths.schema_file()
    with pytest.raises(RelaykitError, match="needs a relaykit clone"):
        paths.project_root()


def test_build_dir_outside_a_clone_is_cwd(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv("RELAYKIT_BUILD_DIR", raising=False)
    assert paths.build_dir() == ROOT / "build"
    monkeypatch.setattr(paths, "checkout", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert paths.build_dir() == tmp_path / "build"
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(tmp_path / "elsewhere"))
    assert paths.build_dir() == tmp_path / "elsewhere"


def test_relaykit_home_must_hold_the_data(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("RELAYKIT_HOME", str(tmp_path))
    with pytest.raises(RelaykitError, match=re.escape("has no schema/profile.schema.json")):
        paths.data_dir()
    monkeypatch.setenv("RELAYKIT_HOME", str(ROOT))
    assert paths.data_dir() == ROOT


# --- the pinned toolchain ---------------------------------------------------------------

def _requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _lock_pins() -> dict[str, str]:
    text = (ROOT / cli.LOCK_FILE).read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", text, re.MULTILINE))
    return {name.lower().replace("_", "-").replace(".", "-"): v for name, v in pins.items()}


def test_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins = _lock_pins()
    missing = [s for s in wanted
               if _requirement_name(s).replace(".", "-") not in pins]
    assert missing == [], "run: invoke lock-deps"
    text = (ROOT / cli.LOCK_FILE).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    unhashed = [e.split()[0] for e in entries if e.strip() and "--hash=sha256:" not in e]
    assert unhashed == []
    assert "setuptools" in pins  # bootstrap builds relaykit with --no-build-isolation


def test_lint_tools_pinned_alike_in_pyproject_and_lock() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]["test"]
    pins = _lock_pins()
    for tool in ("ruff", "mypy"):
        spec = next(s for s in extra if _requirement_name(s) == tool)
        assert spec == f"{tool}=={pins[tool]}"


def test_bootstrap_installs_the_lock_and_stamps_its_hash() -> None:
    script = (ROOT / "bootstrap").read_text()
    assert f'LOCK={cli.LOCK_FILE}' in script
    assert 'cat pyproject.toml "$LOCK" | sha256sum' in script
    assert '--require-hashes -r "$LOCK"' in script
    assert "--no-deps --no-build-isolation -e ." in script
