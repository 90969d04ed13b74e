"""The fast path: one pytest collection, then a fork per mutant that swaps one function's code.

Most mutants change the body of a function that runs only when a test calls it.  For
those, a session process imports the (unmutated) copy of src/ and collects the unit
tests once; for each mutant it forks, and the fork replaces the `__code__` of the one
top-level function or method that holds the mutation with the mutated module's code
for it, then runs the chosen tests (fastest first, stopping at the first failure).
Every reference to the function (`from x import f` included) sees the new code, and
nothing outlives the fork.  Code that runs at import time (tables, decorators) cannot be
swapped after the fact: runner.py runs those mutants in a fresh import instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any

# Exit codes of a fork: 0 survived, 1 a test failed, FALLBACK the code could not be swapped.
FALLBACK = 7
# The first job of every session: no mutant, every test its mutants will run.  It must
# pass, or the session itself breaks tests and every "kill" would be false.
CONTROL = "control: no mutant"


@dataclass(frozen=True)
class Job:
    id: str
    module: str
    function: str  # the mutator's dotted qualname of the enclosing function
    source: str  # the whole mutated module
    nodeids: tuple[str, ...]
    timeout: float


def _unwrap(obj: Any) -> FunctionType | None:
    for attr in ("fget", "func", "__func__", "__wrapped__"):
        inner = getattr(obj, attr, None)
        if isinstance(inner, FunctionType):
            return inner
    return obj if isinstance(obj, FunctionType) else None


def _find_function(module: ModuleType, dotted: str) -> tuple[FunctionType, Any] | None:
    """The function at the dotted path, and the object found in the namespace (to clear
    an lru cache).  None for a function nested in another: closures the outer one made
    before the swap (a decorator's wrapper, made at import) keep the old code, so such a
    mutant needs a fresh import."""
    scope: Any = module
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        holder = vars(scope) if isinstance(scope, type | ModuleType) else {}
        obj = holder.get(part)
        if obj is None:
            return None
        fn = _unwrap(obj)
        if fn is not None:
            return (fn, obj) if i == len(parts) - 1 else None
        if not isinstance(obj, type):
            return None
        scope = obj
    return None


def _code_named(code: CodeType, qualname: str) -> CodeType | None:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            if const.co_qualname == qualname:
                return const
            found = _code_named(const, qualname)
            if found is not None:
                return found
    return None


def swap(job: Job) -> bool:
    """Put the mutated code in place; False when this mutant needs a fresh import."""
    module = sys.modules.get(job.module)
    if module is None:
        try:
            module = __import__(job.module, fromlist=["_"])
        except Exception:
            return False
    found = _find_function(module, job.function)
    if found is None:
        return False
    fn, holder = found
    mutated = compile(job.source, fn.__code__.co_filename, "exec", dont_inherit=True)
    code = _code_named(mutated, fn.__qualname__)
    if code is None or code.co_freevars != fn.__code__.co_freevars:
        return False
    fn.__code__ = code
    cache_clear = getattr(holder, "cache_clear", None)
    if callable(cache_clear):
        cache_clear()
    return True


class _Watch:
    def __init__(self) -> None:
        self.failed = False

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self.failed = True


def os_threads() -> int:
    """Threads of this process as the kernel counts them (foreign runtimes included)."""
    return len(os.listdir("/proc/self/task"))


def _run_fork(session: Any, job: Job, items: list[Any]) -> None:
    """In the fork: swap, run the items, exit.  Never returns."""
    code = FALLBACK
    try:
        os.setpgid(0, 0)
        if job.id == CONTROL or swap(job):
            watch = _Watch()
            session.config.pluginmanager.register(watch, "rk-mut-watch")
            code = 0
            for i, item in enumerate(items):
                nextitem = items[i + 1] if i + 1 < len(items) else None
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                if watch.failed:
                    code = 1
                    break
    except BaseException:  # the mutant broke something the tests rely on: a kill
        code = 1
    finally:
        sys.stdout.flush()
        os._exit(code)


def _wait(pid: int, deadline: float) -> tuple[str, float]:
    started = time.monotonic()
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - started
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # whatever the tests started and left behind
    if os.WIFSIGNALED(status):
        return "killed", time.monotonic() - started
    code = os.WEXITSTATUS(status)
    outcome = {0: "survived", 1: "killed", FALLBACK: "fallback"}.get(code, "error")
    return outcome, time.monotonic() - started


class Server:
    """pytest plugin: after collection, serve the jobs instead of running the suite."""

    def __init__(self, jobs: Sequence[Job], results: Path) -> None:
        self.jobs = jobs
        self.results = results
        self.parent = os.getppid()

    def pytest_runtestloop(self, session: Any) -> bool:
        by_id = {item.nodeid: item for item in session.items}
        threads = os_threads()
        with self.results.open("a", encoding="utf-8") as out:
            if threads > 1:
                # fork() copies only the calling thread: a lock another thread holds
                # (a Go or Java runtime's, a pool's) never comes free in the child.
                out.write(json.dumps({"id": CONTROL, "outcome": "threaded",
                                      "seconds": 0.0, "threads": threads}) + "\n")
                return True
            for job in self.jobs:
                if os.getppid() != self.parent:
                    break  # the runner is gone (killed): stop, leave nothing behind
                items = [by_id[n] for n in job.nodeids if n in by_id]
                if not items:
                    outcome, seconds = "error", 0.0
                else:
                    pid = os.fork()
                    if pid == 0:
                        _run_fork(session, job, items)
                    outcome, seconds = _wait(pid, time.monotonic() + job.timeout)
                out.write(json.dumps({"id": job.id, "outcome": outcome,
                                      "seconds": round(seconds, 3)}) + "\n")
                out.flush()
        return True


def serve(jobs: Sequence[Job], results: Path, src: str, home: str, basetemp: Path,
          test_args: Sequence[str]) -> None:
    """In a forked process of the runner: import from `src`, collect, serve.  Never
    returns."""
    code = 3
    try:
        os.setpgid(0, 0)
        from tests.mutation.runner import _SrcFinder

        os.environ.update(PYTHONPATH=src, PYTHONDONTWRITEBYTECODE="1", RELAYKIT_HOME=home)
        sys.dont_write_bytecode = True
        sys.meta_path.insert(0, _SrcFinder(src))
        log = os.open(results.with_suffix(".log"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        import pytest

        code = int(pytest.main([*test_args, "-q", "-p", "no:cacheprovider", "--basetemp",
                                str(basetemp), "--no-header"], plugins=[Server(jobs, results)]))
    except BaseException:
        code = 3
    finally:
        os._exit(code)

