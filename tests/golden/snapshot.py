"""What a profile renders to, as the files kept under tests/golden/<profile>/.

    manifest.txt            every entry of the rendered tree: mode owner:group kind path
    files/<path>            the content of every rendered file (main.cf, master.cf,
                            smtpd.conf, saslauthd defaults, runtime conf, maps)
    postconf/*.edits        the same settings as the package's postconf edits

and, under tests/golden/policy/, what the policy answers for every name of its tables
(`policy_answers`): the names are the golden file's, so dropping or adding a table entry,
or changing a diagnostic's wording, shows up as a diff.
"""

from __future__ import annotations

import difflib
import json
import shutil
import tempfile
from pathlib import Path

from relaykit.errors import Diagnostic
from relaykit.profile import parameters
from relaykit.profile.load import load_profile, shipped_profiles
from relaykit.profile.restrictions import RESTRICTIONS, ArgKind
from relaykit.render.postfix import Rendered, render
from relaykit.render.tree import Tree
from tests.diagnostics import profile_diagnostics

GOLDEN_DIR = Path(__file__).resolve().parent
POLICY = "policy"  # tests/golden/policy/: not a profile
REGENERATE = "invoke golden"
BASE = "extends: roaming\nname: t\n"
# Names no table holds: refused as unknown, with the same wording every time.
UNKNOWN_PARAMETERS = ("relaykit_no_such_parameter", "smtpd_sasl_typo")
UNKNOWN_RESTRICTIONS = ("permit_everybody", "check_sasl_acess")
EXAMPLE_ARG = {ArgKind.NONE: "", ArgKind.MAP: " hash:/etc/postfix/m",
               ArgKind.DNSLIST: " list.example.org", ArgKind.POLICY: " inet:127.0.0.1:10023",
               ArgKind.SECONDS: " 1"}


def shipped_names() -> list[str]:
    return [p.stem for p in shipped_profiles()]


def manifest(tree: Tree) -> str:
    lines = []
    for e in tree:
        target = f" -> {e.target}" if e.kind == "symlink" else ""
        lines.append(f"{e.mode:04o} {e.owner}:{e.group} {e.kind} {e.path}{target}\n")
    return "".join(lines)


def snapshot(name: str) -> dict[str, bytes]:
    """Relative golden path -> content, for one shipped profile."""
    rendered = render(load_profile(name).profile)
    out = {"manifest.txt": manifest(rendered.tree).encode()}
    for e in rendered.tree:
        if e.kind == "file":
            out["files" + e.path] = e.data
    out.update(postconf_edits(rendered))
    return out


def postconf_edits(rendered: Rendered) -> dict[str, bytes]:
    """The settings the package applies with postconf: main.cf, then master.cf services."""
    main = "".join(f"{k} = {v}\n" for k, v in rendered.main_settings)
    master: list[str] = []
    for e in rendered.listeners:
        master.append(f"{e.fields()}\n")
        master.extend(f"{e.key}/{k} = {v}\n" for k, v in e.options)
    return {"postconf/main.cf.edits": main.encode(),
            "postconf/master.cf.edits": "".join(master).encode()}


def _findings(text: str) -> list[Diagnostic]:
    with tempfile.TemporaryDirectory(prefix="rk-golden-") as tmp:
        return profile_diagnostics(Path(tmp), text)


def _answer(key: str, text: str) -> str:
    """One block per name: every diagnostic the profile gets, or `accepted`."""
    found = sorted(d.format().split(": ", 1)[1] for d in _findings(text))
    return f"{key}\n" + "".join(f"  {line}\n" for line in found or ["accepted"])


def _relay(item: str, answer: str) -> str:
    return BASE + (f"restrictions:\n  relay: ['{item}', permit_sasl_authenticated,"
                   " reject_unauth_destination]\n"
                   f"  maps:\n    m: {{entries: {{x.example: '{answer}'}}}}\n")


def policy_answers() -> dict[str, bytes]:
    """What validation says for every name of the policy's tables, tried for real: each
    main.cf parameter set through postfix.main_cf to a value no grammar takes, and each
    restriction first in a relay list, with a map answering OK and one answering
    REJECT."""
    names = sorted({*parameters.ALLOWED, *parameters.MANAGED, *parameters.NOT_OFFERED,
                    *parameters.OBSOLETE, *UNKNOWN_PARAMETERS})
    main_cf = "".join(_answer(n, BASE + f"postfix:\n  main_cf:\n    {n}: {json.dumps('!x')}\n")
                      for n in names)
    relay = []
    for n in sorted({*RESTRICTIONS, *UNKNOWN_RESTRICTIONS}):
        spec = RESTRICTIONS.get(n)
        item = n + (EXAMPLE_ARG[spec.arg] if spec else "")
        for answer in ("OK", "REJECT"):
            relay.append(_answer(f"{item} (map answers {answer})", _relay(item, answer)))
    return {"main_cf.txt": main_cf.encode(), "restrictions.txt": "".join(relay).encode()}


def stored(name: str, root: Path = GOLDEN_DIR) -> dict[str, bytes]:
    base = root / name
    return {p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()}


def diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    """A readable difference: files missing, unexpected, or changed (unified diff)."""
    out: list[str] = []
    for path in sorted(set(expected) | set(actual)):
        old, new = expected.get(path), actual.get(path)
        if old == new:
            continue
        if old is None:
            out.append(f"+ new file {path}\n")
        elif new is None:
            out.append(f"- no longer rendered: {path}\n")
        out.extend(difflib.unified_diff(
            (old or b"").decode(errors="replace").splitlines(keepends=True),
            (new or b"").decode(errors="replace").splitlines(keepends=True),
            f"golden/{path}", f"rendered/{path}"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def write(root: Path = GOLDEN_DIR) -> list[str]:
    """Rewrite every shipped profile's golden files; drop those of removed profiles."""
    names = shipped_names()
    for old in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"):
        if old.name not in (*names, POLICY):
            shutil.rmtree(old)
    for name in (*names, POLICY):
        files = policy_answers() if name == POLICY else snapshot(name)
        base = root / name
        if base.exists():
            shutil.rmtree(base)
        for rel, data in files.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return [*names, POLICY]


if __name__ == "__main__":
    for written in write():
        print(f"wrote {GOLDEN_DIR / written}")
