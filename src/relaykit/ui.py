"""The one output layer: log, warn, step and complete_step, all on stderr.

stdout is kept for what a command produces (a table, JSON, a resolved profile), so it
can be piped; everything about *how* the work goes is written here, on stderr.

- ``log`` and ``warn`` always print: results ("wrote ...") and problems.
- ``step`` and ``complete_step`` report progress. They print on a terminal, and are
  quiet when stderr is not a terminal or ``CI`` is set, unless ``--verbose`` or
  ``RELAYKIT_VERBOSE=1`` asks (``RELAYKIT_VERBOSE=0`` silences a terminal too).
  On a terminal a running step shows its elapsed time, updated every second; in a log
  file a line every minute says it is still running.
- ``debug_enabled`` answers whether tracebacks are wanted: ``relaykit --debug``,
  ``invoke --debug`` or ``RELAYKIT_DEBUG=1``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

# What modules take as their log= parameter: one line of text, no newline.
Log = Callable[[str], None]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
TTY_TICK = 1.0  # seconds between redraws of the running step on a terminal
LOG_TICK = 60.0  # seconds between "still running" lines when not on a terminal


def _env_flag(name: str) -> bool | None:
    """True/False when the variable says so, None when unset or unreadable."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


@dataclass
class _Settings:
    """Set once by the command line (relaykit --verbose / --debug); None: ask the env."""

    verbose: bool | None = None
    debug: bool | None = None


_settings = _Settings()


def configure(*, verbose: bool | None = None, debug: bool | None = None) -> None:
    """Called by the CLI with its flags; None leaves a setting to the environment."""
    _settings.verbose = verbose
    _settings.debug = debug


def debug_enabled() -> bool:
    """--debug (relaykit or invoke's, which turns on invoke's DEBUG logging) or RELAYKIT_DEBUG."""
    if _settings.debug:
        return True
    if _env_flag("RELAYKIT_DEBUG"):
        return True
    # `invoke --debug` has no other trace a task can see: it enables invoke's logger.
    return logging.getLogger("invoke").isEnabledFor(logging.DEBUG)


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether step/complete_step print (see the module docstring for the rules)."""
    if _settings.verbose is not None:
        return _settings.verbose
    asked = _env_flag("RELAYKIT_VERBOSE")
    if asked is not None:
        return asked
    if debug_enabled():
        return True
    if _env_flag("CI"):
        return False
    out = stream or sys.stderr
    return bool(getattr(out, "isatty", lambda: False)())


def elapsed(seconds: float) -> str:
    """4.2 s, 59.9 s, 2 min 05 s: short, and exact enough to compare two runs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


@dataclass
class _Running:
    title: str
    start: float


@dataclass
class _Progress:
    """The steps running now (innermost last) and the thread showing the innermost."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: list[_Running] = field(default_factory=list)
    line_open: bool = False  # a \r-redrawn line is on the terminal, without its newline
    ticker: threading.Thread | None = None
    wake: threading.Event = field(default_factory=threading.Event)


_progress = _Progress()


def _write(text: str) -> None:
    """Write whole lines to stderr, first closing a redrawn progress line."""
    out = sys.stderr
    with _progress.lock:
        if _progress.line_open:
            out.write("\r\x1b[K")
            _progress.line_open = False
        out.write(text + "\n")
        out.flush()


def log(message: str) -> None:
    """A result or fact the user wants to see ("wrote build/roaming/roaming.oci.tar")."""
    _write(message)


def warn(message: str) -> None:
    _write(f"warning: {message}")


def step(message: str) -> None:
    """A detail of progress, shown only when progress is (see progress_enabled)."""
    if progress_enabled():
        _write(message)


def _tick(is_tty: bool) -> None:
    interval = TTY_TICK if is_tty else LOG_TICK
    while not _progress.wake.wait(interval):
        with _progress.lock:
            if not _progress.running:
                return
            current = _progress.running[-1]
            spent = elapsed(time.monotonic() - current.start)
            out = sys.stderr
            if is_tty:
                out.write(f"\r\x1b[K{current.title} ... {spent}")
                _progress.line_open = True
            else:
                out.write(f"{current.title}: still running, {spent}\n")
            out.flush()


def _start_ticker() -> None:
    if _progress.ticker is not None and _progress.ticker.is_alive():
        return
    _progress.wake.clear()
    is_tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    _progress.ticker = threading.Thread(target=_tick, args=(is_tty,), daemon=True,
                                        name="relaykit-progress")
    _progress.ticker.start()


def _stop_ticker() -> None:
    ticker = _progress.ticker
    if ticker is None:
        return
    _progress.wake.set()
    ticker.join()
    _progress.ticker = None


@contextmanager
def complete_step(title: str) -> Iterator[None]:
    """Report a long step: "title ..." at start, "title: done in 3 min 02 s" at the end.

    Failures say "failed after ..." and propagate. Quiet unless progress_enabled().
    """
    if not progress_enabled():
        yield
        return
    running = _Running(title, time.monotonic())
    _write(f"{title} ...")
    with _progress.lock:
        _progress.running.append(running)
    _start_ticker()
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        with _progress.lock:
            _progress.running.remove(running)
            last = not _progress.running
        if last:
            _stop_ticker()
        _write(f"{title}: {outcome} {elapsed(time.monotonic() - running.start)}")
