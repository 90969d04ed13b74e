"""Benchmark: a profile with a 100,000-entry access map validates and renders fast.

    python bench/bench_policy.py [--entries 100000] [--out bench/results/policy-DATE.json]

Runs `invoke validate` and `invoke build --format none` (the render path: YAML, schema,
policy, render, write the tree) on a generated profile, each in a fresh process as a
user would, and records wall time and peak memory (ru_maxrss of the child).  Issue 7
asks for < 2 s (9.3 s before the bounded loader and the parsed policy).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0


def _key(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, rest = divmod(i, 36)
        out = digits[rest] + out
        if i == 0:
            return "k" + out


def profile_text(entries: int) -> str:
    """A roaming relay with an allowlist map after reject_unauth_destination: short keys
    in flow style, so 100,000 entries fit under the loader's 1 MB limit."""
    items = ",".join(f"{_key(i)}: {'REJECT' if i % 10 == 0 else 'OK'}"
                     for i in range(entries))
    return ("extends: roaming\nname: bench-map\nrestrictions:\n"
            " recipient: [permit_sasl_authenticated, reject_unauth_destination,"
            " check_recipient_access hash:/etc/postfix/rcpt]\n"
            " maps:\n  rcpt:\n   entries: {" + items + "}\n")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, exit code and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
    return elapsed, proc.returncode, max(peak, before)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rk-pol-bench."))
    try:
        profile = work / "bench-map.yaml"
        shutil.copy(ROOT / "profiles" / "roaming.yaml", work / "roaming.yaml")
        profile.write_text(profile_text(opts.entries).replace("extends: roaming",
                                                              "extends: roaming.yaml"))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
               "RELAYKIT_BUILD_DIR": str(work / "build")}
        invoke = [sys.executable, "-m", "invoke"]
        commands = {
            "validate": [*invoke, "validate", "--profile", str(profile)],
            "build --format none": [*invoke, "build", "--profile", str(profile),
                                    "--format", "none"],
        }
        results: dict[str, dict[str, Any]] = {}
        for label, args in commands.items():
            runs = [timed(args, env) for _ in range(opts.runs)]
            results[label] = {"seconds": [round(r[0], 3) for r in runs],
                              "best_seconds": round(min(r[0] for r in runs), 3),
                              "exit_codes": [r[1] for r in runs],
                              "peak_rss_mib": round(max(r[2] for r in runs) / 1024, 1),
                              "command": " ".join(args[2:])}
            print(f"{label}: best {results[label]['best_seconds']} s, "
                  f"peak {results[label]['peak_rss_mib']} MiB, exit {runs[0][1]}")
        record = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "entries": opts.entries, "profile_bytes": profile.stat().st_size,
            "target_seconds": TARGET_SECONDS, "host": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "how": "python bench/bench_policy.py --entries N (fresh process per run)",
            "results": results,
        }
        if opts.out:
            opts.out.write_text(json.dumps(record, indent=2) + "\n")
            print(f"wrote {opts.out}")
        ok = all(r["best_seconds"] < TARGET_SECONDS and set(r["exit_codes"]) == {0}
                 for r in results.values())
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
