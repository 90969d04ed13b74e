"""Try mutants against tests you choose, without the baseline run: for writing the test
that kills a survivor.

    python -m tests.mutation.try_one ID [ID...] -- tests/unit/test_x.py [-k expr]

Each mutant runs in a forked child on its own copy of src/ (as the runner does): the
checkout is never written.  The same tests first run without any mutant, from the copy:
they must pass, or a "kill" would be a test that cannot pass there.  Prints `killed` or
`survived` per mutant; exit 0 when every one was killed.  `invoke mutation --only ID`
remains the judge (it picks the tests).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.mutation import runner
from tests.mutation.mutator import Mutant


def try_mutant(m: Mutant, pytest_args: list[str], root: Path, template: Path,
               trees: dict[str, Any], control: bool = False) -> runner.Outcome:
    """Run the tests on the mutant (or, `control`, on the same copy without it)."""
    work = root / (("control-" if control else "") + m.id.replace("/", "_").replace(":", "_"))
    work.mkdir()
    source = ((runner.REPO / m.file).read_text(encoding="utf-8") if control
              else runner._source(m, trees))
    pid = os.fork()
    if pid == 0:
        sel = runner.Selection(tuple(pytest_args), (), 0.0)
        runner._child(m, source, sel, template, work, select=False)
    _, status = os.waitpid(pid, 0)
    outcome, _ = runner._outcome(status)
    return outcome


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    ids, pytest_args = argv[:split], argv[split + 1:]
    files = sorted({i.split(":", 1)[0] for i in ids})
    by_id = {m.id: m for m in runner.collect(files)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        print(f"no such mutant: {', '.join(missing)} (list them with "
              f"`python -m tests.mutation.runner --list --file FILE`)", file=sys.stderr)
        return 2
    runner._preload()
    trees: dict[str, Any] = {}
    left = 0
    with tempfile.TemporaryDirectory(prefix="rk-try-") as tmp:
        template = runner._make_template(Path(tmp))
        # The same tests without any mutant must pass from the copy, or a "kill" below
        # would be a test that cannot pass there (one reading the checkout, say).
        control = try_mutant(by_id[ids[0]], pytest_args, Path(tmp), template, trees,
                             control=True)
        if control is not runner.Outcome.SURVIVED:
            print("the tests fail without any mutant, from a copy of src/: choose tests "
                  "that pass there (`invoke mutation --only ID` picks them itself)",
                  file=sys.stderr)
            return 2
        for i in ids:
            outcome = try_mutant(by_id[i], pytest_args, Path(tmp), template, trees)
            left += outcome is not runner.Outcome.KILLED
            print(f"{outcome.value:<9} {by_id[i].describe()}", flush=True)
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
