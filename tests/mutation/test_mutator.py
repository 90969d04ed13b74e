"""The mutation tool itself: operators, stable ids, what is left alone, scoring, sampling."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.mutation import runner
from tests.mutation.mutator import Mutant, Operator, mutants, mutated_source

TOY = '''"""Module docstring."""
from __future__ import annotations

TABLE = ("a", "b")
NAMES = "permit reject_unauth_destination".split()
LIMITS = {"x": 1}


def error(msg: str, hint: str) -> str:
    return msg


def check(words: list[str], n: int) -> bool:
    """Docstring."""
    assert words is not None
    if n < 3 and not words:
        return False
    for w in words:
        if w in TABLE:
            error(f"bad {w}", "fix it")
            continue
    return any(w == "ok" for w in words)
'''


def toy(tmp_path: Path, text: str = TOY) -> list[Mutant]:
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "toy.py").write_text(text)
    return mutants(pkg / "toy.py", tmp_path, tmp_path / "src")


def by_op(ms: list[Mutant], op: Operator) -> list[tuple[str, str]]:
    return [(m.before, m.after) for m in ms if m.operator is op]


def test_every_operator_produces_its_mutant(tmp_path: Path) -> None:
    ms = toy(tmp_path)
    assert ("n < 3", "n >= 3") in by_op(ms, Operator.NEGATE_COMPARE)
    assert ("n < 3", "n <= 3") in by_op(ms, Operator.BOUNDARY)
    assert ("w in TABLE", "w not in TABLE") in by_op(ms, Operator.NEGATE_COMPARE)
    assert ("n < 3 and not words", "n < 3 or not words") in by_op(ms, Operator.AND_OR)
    assert ("not words", "words") in by_op(ms, Operator.DROP_NOT)
    assert ("False", "True") in by_op(ms, Operator.FLIP_BOOL)
    assert ("3", "4") in by_op(ms, Operator.NUMBER)
    assert ('"a"', "''") in by_op(ms, Operator.STRING)
    assert ('"a"', "<entry removed>") in by_op(ms, Operator.DROP_ENTRY)
    assert ("'x': 1", "<entry removed>") in by_op(ms, Operator.DROP_ENTRY)
    assert ("permit", "<word removed>") in by_op(ms, Operator.DROP_WORD)
    assert ("reject_unauth_destination", "<word removed>") in by_op(ms, Operator.DROP_WORD)
    assert ("def check", "def check: return") in by_op(ms, Operator.EARLY_RETURN)
    assert any(a == "None" for _, a in by_op(ms, Operator.RETURN_NONE))
    assert any(b.startswith("any(") and a.startswith("all(")
               for b, a in by_op(ms, Operator.BUILTIN_SWAP))
    assert ("continue", "break") in by_op(ms, Operator.BREAK_CONTINUE)
    dropped = [b for b, _ in by_op(ms, Operator.DROP_STATEMENT)]
    assert any(b.startswith("if n < 3") for b in dropped)


def test_text_types_and_docstrings_are_left_alone(tmp_path: Path) -> None:
    ms = toy(tmp_path)
    strings = [m.before for m in ms if m.operator is Operator.STRING]
    assert '"ok"' in strings
    assert not any("ocstring" in b or "fix it" in b or "bad" in b for b in strings)
    befores = " ".join(m.before for m in ms)
    assert "words is not None" not in befores  # a mypy narrowing assert
    assert "list[str]" not in befores and "-> bool" not in befores  # annotations


def test_ids_survive_unrelated_edits_and_are_unique(tmp_path: Path) -> None:
    first = {m.id for m in toy(tmp_path)}
    moved = toy(tmp_path, TOY.replace("TABLE = ", "# a new comment\nOTHER = 1\nTABLE = "))
    assert len({m.id for m in moved}) == len(moved)
    assert first <= {m.id for m in moved}


def test_mutated_source_compiles_differs_and_leaves_the_tree_alone(tmp_path: Path) -> None:
    ms = toy(tmp_path)
    tree = ast.parse(TOY)
    original = ast.unparse(tree)
    sources = set()
    for m in ms:
        src = mutated_source(tree, m)
        compile(src, "toy.py", "exec")
        assert src != original
        sources.add(src)
    assert ast.unparse(tree) == original
    assert len(sources) == len(ms), "two mutants with the same code"


def test_import_time_flag_follows_where_the_code_runs(tmp_path: Path) -> None:
    ms = toy(tmp_path)
    table = next(m for m in ms if m.operator is Operator.DROP_ENTRY and m.before == '"a"')
    inner = next(m for m in ms if m.before == "n < 3")
    early = next(m for m in ms if m.operator is Operator.EARLY_RETURN)
    assert table.import_time and not inner.import_time and not early.import_time


COVERAGE = {"tests": {
    "t.py::slow": {"file": "t.py", "duration": 2.0,
                   "lines": {str(runner.REPO / "src/pkg/toy.py"): [5, 6, 7]}},
    "t.py::fast": {"file": "t.py", "duration": 0.1,
                   "lines": {str(runner.REPO / "src/pkg/toy.py"): [7]}},
    "u.py::other": {"file": "u.py", "duration": 0.1, "lines": {}},
}}


def mutant_at(line: int, import_time: bool = False) -> Mutant:
    return Mutant("src/pkg/toy.py", "pkg.toy", "f", Operator.NUMBER, line, line, "1", "2",
                  import_time)


def test_tests_are_chosen_by_the_lines_they_run_fastest_first() -> None:
    assert runner.select_tests(mutant_at(7), COVERAGE).nodeids == ("t.py::fast", "t.py::slow")
    assert runner.select_tests(mutant_at(5), COVERAGE).nodeids == ("t.py::slow",)
    assert runner.select_tests(mutant_at(9), COVERAGE).nodeids == ()
    # Import-time code (tables): every test that runs any line of the module.
    sel = runner.select_tests(mutant_at(1, import_time=True), COVERAGE)
    assert sel.nodeids == ("t.py::fast", "t.py::slow") and sel.files == ("t.py",)


def test_score_counts_timeouts_as_kills_and_skips_equivalents() -> None:
    s = runner.FileScore("f")
    for outcome in (runner.Outcome.KILLED, runner.Outcome.TIMEOUT, runner.Outcome.SURVIVED,
                    runner.Outcome.NO_COVERAGE, runner.Outcome.EQUIVALENT):
        s.add(outcome)
    assert (s.mutants, s.scored) == (5, 4)
    assert s.score == 50.0


@pytest.mark.parametrize(("status", "outcome"), [
    (0, runner.Outcome.SURVIVED), (1 << 8, runner.Outcome.KILLED),
    (2 << 8, runner.Outcome.KILLED), (5 << 8, runner.Outcome.ERROR),
    (9, runner.Outcome.KILLED),  # killed by SIGKILL: a crash of the mutated code
])
def test_exit_status_maps_to_an_outcome(status: int, outcome: runner.Outcome) -> None:
    assert runner._outcome(status)[0] is outcome


def test_sample_is_seeded_gated_and_excludes_equivalents() -> None:
    ms = [Mutant(f, "m", "f", Operator.NUMBER, i, i, str(i), str(i + 1), False)
          for f in (*runner.GATED, *runner.REPORTED) for i in range(30)]
    equivalent = {ms[0].id: "reason"}
    a = runner.choose(ms, equivalent, 20, seed=3)
    assert a == runner.choose(ms, equivalent, 20, seed=3)
    assert a != runner.choose(ms, equivalent, 20, seed=4)
    assert len(a) == 20 and all(m.file in runner.GATED for m in a)
    assert ms[0] not in a


def test_equivalents_need_a_reason(tmp_path: Path) -> None:
    f = tmp_path / "eq.toml"
    f.write_text('[[equivalent]]\nid = "a:b:c:d"\nreason = "same output"\n')
    assert runner.load_equivalents(f) == {"a:b:c:d": "same output"}
    f.write_text('[[equivalent]]\nid = "a:b:c:d"\nreason = ""\n')
    with pytest.raises(SystemExit, match="no reason"):
        runner.load_equivalents(f)


def test_checked_in_equivalents_name_existing_mutants() -> None:
    """A stale entry (the code changed) must be removed, not silently kept."""
    listed = runner.load_equivalents()
    current = {m.id for m in runner.collect((*runner.GATED, *runner.REPORTED))}
    stale = sorted(set(listed) - current)
    assert not stale, f"equivalent.toml lists mutants that no longer exist: {stale}"


def test_early_return_names_the_function_it_changes(tmp_path: Path) -> None:
    early = next(m for m in toy(tmp_path) if m.operator is Operator.EARLY_RETURN)
    assert early.function == "check" and not early.import_time
    assert early.line > TOY.splitlines().index("def check(words: list[str], n: int) -> bool:")


def test_swap_replaces_the_code_every_reference_sees(tmp_path: Path) -> None:
    """The fast path: a function's __code__ swapped for the mutant's, seen through a
    `from x import f` reference taken before the swap."""
    import sys
    import types

    from tests.mutation import session

    ms = toy(tmp_path)
    m = next(m for m in ms if m.operator is Operator.EARLY_RETURN)
    module = types.ModuleType("rk_mut_toy")
    exec(compile(TOY, "toy.py", "exec"), module.__dict__)
    alias = module.check
    sys.modules["rk_mut_toy"] = module
    try:
        assert alias(["ok"], 5) is True
        job = session.Job(m.id, "rk_mut_toy", m.function, mutated_source(ast.parse(TOY), m),
                          (), 1.0)
        assert session.swap(job)
        assert alias(["ok"], 5) is None
    finally:
        del sys.modules["rk_mut_toy"]


def test_import_time_mutants_also_run_the_tests_of_modules_importing_them() -> None:
    """A table is read by other code without running a line of its own module."""
    files = runner._importers("relaykit.profile.parameters")
    assert "tests/unit/test_safety_parameters.py" in files
    m = Mutant("src/relaykit/profile/parameters.py", "relaykit.profile.parameters",
               "<module>", Operator.STRING, 1, 1, '"x"', "''", True)
    cov = {"tests": {"tests/unit/test_safety_parameters.py::t": {
        "file": "tests/unit/test_safety_parameters.py", "duration": 0.1, "lines": {}}}}
    assert runner.select_tests(m, cov).nodeids == ("tests/unit/test_safety_parameters.py::t",)


def test_cached_functions_are_treated_as_import_time(tmp_path: Path) -> None:
    ms = toy(tmp_path, "from functools import cache\n\n\n@cache\ndef schema() -> dict:\n"
             "    return {'enum': [1, 2]}\n")
    inner = [m for m in ms if m.function == "schema" and m.operator is Operator.STRING]
    assert inner and all(m.import_time for m in inner)


def test_a_threaded_session_does_not_fork(tmp_path: Path) -> None:
    """fork() of a process with other threads can deadlock the child (helm_python's Go
    runtime did): the session reports it instead of forking."""
    import threading
    from types import SimpleNamespace

    from tests.mutation import session

    before = session.os_threads()  # other tests of this process may have left some
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        results = tmp_path / "s.jsonl"
        job = session.Job(session.CONTROL, "", "", "", ("t",), 5.0)
        server = session.Server([job], results)
        assert server.pytest_runtestloop(SimpleNamespace(items=[])) is True
    finally:
        stop.set()
        thread.join()
    row = json.loads(results.read_text())
    assert row["outcome"] == "threaded" and row["threads"] == before + 1
    assert session.os_threads() == before
