"""What a profile renders to, as the files kept under tests/golden/<profile>/.

    manifest.txt            every entry of the rendered tree: mode owner:group kind path
    files/<path>            the content of every rendered file (main.cf, master.cf,
                            smtpd.conf, saslauthd defaults, runtime conf, maps)
    postconf/*.edits        the same settings as the package's postconf edits
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from relaykit.profile.load import load_profile, shipped_profiles
from relaykit.render.postfix import Rendered, render
from relaykit.render.tree import Tree

GOLDEN_DIR = Path(__file__).resolve().parent
REGENERATE = "invoke golden"


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
        if old.name not in names:
            shutil.rmtree(old)
    for name in names:
        files = snapshot(name)
        base = root / name
        if base.exists():
            shutil.rmtree(base)
        for rel, data in files.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return names


if __name__ == "__main__":
    for written in write():
        print(f"wrote {GOLDEN_DIR / written}")
