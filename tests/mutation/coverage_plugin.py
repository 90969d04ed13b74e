"""pytest plugin for the baseline run: which lines of the mutated modules each test runs.

Loaded with `-p tests.mutation.coverage_plugin`; RELAYKIT_MUTATION_TARGETS names the
files to trace (os.pathsep-separated, absolute), RELAYKIT_MUTATION_COVERAGE the JSON
file to write.  Lines run while a test module is collected (parametrize lists built
from a profile) count for every test of that module.  A line tracer only on frames
of the target files keeps the baseline a few seconds longer than a plain run.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

TARGETS = frozenset(p for p in os.environ.get("RELAYKIT_MUTATION_TARGETS", "").split(os.pathsep)
                    if p)
OUT = os.environ.get("RELAYKIT_MUTATION_COVERAGE", "")

_context = ""
_importing = 0  # > 0 while a target module's own top-level code runs
_lines: dict[str, dict[str, set[int]]] = {}
_durations: dict[str, float] = {}
_outcomes: dict[str, str] = {}
_test_files: dict[str, str] = {}


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    global _importing
    if event == "line":
        context = "import" if _importing else _context
        if context:
            _lines.setdefault(context, {}).setdefault(frame.f_code.co_filename, set()).add(
                frame.f_lineno)
    elif event == "return" and frame.f_code.co_name == "<module>":
        _importing -= 1
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    global _importing
    if frame.f_code.co_filename in TARGETS:
        if frame.f_code.co_name == "<module>":
            _importing += 1
        _local(frame, "line", arg)  # the def line: the function was entered
        return _local
    return None


def pytest_configure(config: pytest.Config) -> None:
    if TARGETS:
        sys.settrace(_global)
        threading.settrace(_global)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    global _context
    previous = _context
    if isinstance(collector, pytest.Module):
        _context = "collect:" + collector.nodeid
    yield
    _context = previous


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    global _context
    _context = item.nodeid
    _test_files[item.nodeid] = item.nodeid.split("::", 1)[0]
    start = time.perf_counter()
    yield
    _durations[item.nodeid] = time.perf_counter() - start
    _context = ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    else:
        _outcomes.setdefault(report.nodeid, report.outcome)


def pytest_sessionfinish(session: pytest.Session) -> None:
    sys.settrace(None)
    threading.settrace(None)
    if not OUT:
        return
    tests = {}
    for nodeid, file in _test_files.items():
        lines = {f: set(v) for f, v in _lines.get(nodeid, {}).items()}
        for f, v in _lines.get("collect:" + file, {}).items():
            lines.setdefault(f, set()).update(v)
        tests[nodeid] = {"file": file, "duration": round(_durations.get(nodeid, 0.0), 4),
                         "outcome": _outcomes.get(nodeid, "unknown"),
                         "lines": {f: sorted(v) for f, v in lines.items()}}
    # Lines run while test modules were collected, and while the target modules' own
    # top-level code ran (decorators, tables, functions called to build them): every
    # test that uses the module depends on them.
    collected: dict[str, set[int]] = {}
    for context, files in _lines.items():
        if context.startswith("collect:"):
            for f, v in files.items():
                collected.setdefault(f, set()).update(v)
    imported = _lines.get("import", {})
    Path(OUT).write_text(json.dumps(
        {"tests": tests, "collect": {f: sorted(v) for f, v in collected.items()},
         "import": {f: sorted(v) for f, v in imported.items()}}, indent=0, sort_keys=True))
