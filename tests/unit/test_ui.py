"""relaykit.ui: when progress shows, what it says, and that it never hides a failure."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaykit import ui


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("RELAYKIT_VERBOSE", "RELAYKIT_DEBUG", "CI", "INVOKE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    ui.configure()
    yield
    ui.configure()


def test_progress_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ui.progress_enabled(FakeTty())  # a terminal
    assert not ui.progress_enabled(io.StringIO())  # a log file or a pipe
    monkeypatch.setenv("CI", "true")
    assert not ui.progress_enabled(FakeTty())  # CI: quiet even on a pseudo-terminal
    monkeypatch.setenv("RELAYKIT_VERBOSE", "1")
    assert ui.progress_enabled(io.StringIO())  # unless asked
    monkeypatch.setenv("RELAYKIT_VERBOSE", "0")
    monkeypatch.delenv("CI")
    assert not ui.progress_enabled(FakeTty())  # or told to be quiet
    ui.configure(verbose=True)  # --verbose wins over the environment
    assert ui.progress_enabled(io.StringIO())


def test_debug_implies_progress() -> None:
    ui.configure(debug=True)
    assert ui.debug_enabled()
    assert ui.progress_enabled(io.StringIO())


def test_debug_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not ui.debug_enabled()
    monkeypatch.setenv("RELAYKIT_DEBUG", "1")
    assert ui.debug_enabled()
    monkeypatch.setenv("RELAYKIT_DEBUG", "0")
    assert not ui.debug_enabled()


def test_complete_step_is_quiet_when_not_asked(capsys: pytest.CaptureFixture[str]) -> None:
    with ui.complete_step("building base trixie/amd64"):
        ui.step("detail")
    ui.log("wrote x")  # results always show
    assert capsys.readouterr().err == "wrote x\n"


def test_complete_step_reports_start_and_elapsed(capsys: pytest.CaptureFixture[str]) -> None:
    ui.configure(verbose=True)
    with ui.complete_step("building base trixie/amd64"):
        ui.step("detail")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "building base trixie/amd64 ..."
    assert err[1] == "detail"
    assert err[2].startswith("building base trixie/amd64: done in ")
    assert err[2].endswith(" s")
    assert capsys.readouterr().out == ""  # stdout stays for results


def test_complete_step_reports_failure_and_reraises(
        capsys: pytest.CaptureFixture[str]) -> None:
    ui.configure(verbose=True)
    with pytest.raises(RuntimeError, match="mmdebstrap died"), \
            ui.complete_step("building base trixie/amd64"):
        raise RuntimeError("mmdebstrap died")
    assert "building base trixie/amd64: failed after " in capsys.readouterr().err


def test_long_step_says_it_is_still_running(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ui.configure(verbose=True)
    monkeypatch.setattr(ui, "LOG_TICK", 0.05)
    with ui.complete_step("outer"), ui.complete_step("mmdebstrap"):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "mmdebstrap: still running, 0." in err  # the innermost step is named
    assert re.search(r"\nouter: done in \d+\.\d s\n$", err)
    assert ui._progress.ticker is None  # the thread ended with the last step


def test_terminal_line_is_redrawn_then_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTty()
    monkeypatch.setattr("sys.stderr", tty)
    monkeypatch.setattr(ui, "TTY_TICK", 0.05)
    with ui.complete_step("compressing"):
        time.sleep(0.2)
        ui.log("a result")
    text = tty.getvalue()
    assert "\rcompressing ... 0." not in text  # every redraw clears the line first
    assert "\r\x1b[Kcompressing ... 0." in text
    assert "\r\x1b[Ka result\n" in text  # a log line never lands after a redraw
    assert text.endswith("\n")


def test_elapsed_format() -> None:
    assert ui.elapsed(4.24) == "4.2 s"
    assert ui.elapsed(125.9) == "2 min 05 s"


def test_one_log_type_for_the_whole_package() -> None:
    """Modules take `log: Log` from relaykit.ui instead of each defining the alias."""
    src = Path(ui.__file__).parent
    own = [str(p.relative_to(src)) for p in sorted(src.rglob("*.py"))
           if p.name != "ui.py" and re.search(r"^Log\s*=", p.read_text(), re.MULTILINE)]
    assert own == []
