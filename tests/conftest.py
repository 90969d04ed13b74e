"""Shared fixtures and the suite's two guards.

- No silent skips: under CI=true every skip (a missing tool, no root, no Docker engine)
  is reported as a failure with its reason; outside CI a skip still prints its reason
  (-ra in pyproject's addopts).
- Nothing left behind (issue 13): the session gets its own temp root (TMPDIR), session
  marker and network name prefix (see tests/leftovers.py); at the end, after every
  fixture was torn down (also after Ctrl-C), anything still carrying a mark fails the
  run, is listed, and is then removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from .leftovers import PREFIX_ENV, SESSION_ENV, Marks, find, remove  # noqa: E402

SID_ENV = "RELAYKIT_TEST_SID"  # lets a test pick the id of a child pytest session
KEEP_ENV = "RK_KEEP_TMP"  # keep the session's temp root (debugging)
_marks: Marks | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def is_root() -> bool:
    return os.geteuid() == 0


# --- the session's marks ---------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    global _marks
    if hasattr(config, "workerinput"):  # an xdist worker shares its controller's marks
        return
    _marks = _new_marks()
    # Before anything asks for a temp dir: pytest's basetemp and tempfile follow TMPDIR.
    os.environ["TMPDIR"] = str(_marks.root)
    tempfile.tempdir = None
    os.environ[SESSION_ENV] = _marks.sid
    os.environ[PREFIX_ENV] = _marks.prefix


def _new_marks() -> Marks:
    parent = Path(tempfile.gettempdir())
    wanted = os.environ.pop(SID_ENV, "")
    for _ in range(20):
        sid = wanted or secrets.token_hex(2)[:3]
        root = parent / f"rkt{sid}"
        try:
            root.mkdir(mode=0o755)
        except FileExistsError:
            if wanted:
                raise
            continue
        root.chmod(0o755)  # Postfix's unprivileged daemons must traverse into it
        return Marks(sid, root)
    raise RuntimeError(f"no free session temp root under {parent}")


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None]:
    # After the wrapped hooks: pytest's runner has torn down every remaining fixture.
    result = yield
    if _marks is not None:
        _guard_leftovers(session, _marks)
    return result


def _guard_leftovers(session: pytest.Session, marks: Marks) -> None:
    found = find(marks)
    if found:
        _write(session, f"\nLEFT BEHIND by this test session (issue 13), now removed:\n"
                        f"{found.report()}\n")
        remove(found)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif found.errors:
        _write(session, "\n" + found.report() + "\n")
    if os.environ.get(KEEP_ENV):
        _write(session, f"kept the session's temp root {marks.root}\n")
    elif session.exitstatus != pytest.ExitCode.OK:
        _write(session, f"the session's temp files are removed; {KEEP_ENV}=1 keeps them\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Here, not at session end: also runs for `--help` and runs that never start a session.
    if _marks is not None and not os.environ.get(KEEP_ENV):
        shutil.rmtree(_marks.root, ignore_errors=True)


def _write(session: pytest.Session, text: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write(text, red=True)
    else:
        sys.stderr.write(text)


# --- no silent skips -------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is a failure: {_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if in_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true, which is a failure: {_reason(report)}"
    return report


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


# --- shared fixtures -------------------------------------------------------------------

@pytest.fixture(scope="session")
def docker_engine() -> None:
    """The one Docker engine of the session, started (loopback-only) if none runs.

    Every test that needs Docker requests this, so test order never decides whether
    the engine is up. Without root or dockerd it skips, which fails under CI=true.
    """
    from relaykit.errors import RelaykitError
    from relaykit.verify.harness.engine import engine_up, ensure_dockerd

    if engine_up():
        return
    if not is_root():
        pytest.skip("no Docker engine running, and starting one needs root")
    try:
        ensure_dockerd()
    except RelaykitError as exc:
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "build"
    monkeypatch.setenv("RELAYKIT_BUILD_DIR", str(out))
    return out
