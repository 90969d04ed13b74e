"""The YAML loader against hostile input: every limit at its boundary, every refused tag
and construct, the line of each refusal.

Written to kill the mutants of profile/yamlsrc.py that survived the other unit tests
(`invoke mutation`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relaykit.profile import yamlsrc
from relaykit.profile.yamlsrc import (
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_KEY_LENGTH,
    YamlSyntaxError,
    loads,
)


def refused(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as info:
        loads(text, "p.yaml")
    assert info.value.file == "p.yaml" and info.value.message
    return info.value


def nested(levels: int) -> str:
    return "{a: " * levels + "1" + "}" * levels


def test_depth_limit_is_exact() -> None:
    assert loads(nested(MAX_DEPTH), "p.yaml").data
    assert "nested deeper" in refused(nested(MAX_DEPTH + 1)).message
    deep_list = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert "nested deeper" in refused(deep_list).message


def aliases(count: int, size: int = 99) -> str:
    items = ", ".join("1" for _ in range(size))
    return f"a: &x [{items}]\nb: [{', '.join('*x' for _ in range(count))}]\n"


def test_alias_expansion_limit_is_exact() -> None:
    per_alias = 100  # the list node and its 99 items
    fits = MAX_ALIAS_NODES // per_alias
    assert len(loads(aliases(fits), "p.yaml").data["b"]) == fits
    err = refused(aliases(fits + 1))
    assert "alias" in err.message and err.line == 2


def test_nested_collections_count_once_towards_the_alias_limit() -> None:
    inner = ", ".join("[1]" for _ in range(62))  # 1 + 62 * 2 = 125 nodes per alias
    fits = MAX_ALIAS_NODES // 125
    text = f"a: &x [{inner}]\nb: [{', '.join('*x' for _ in range(fits))}]\n"
    assert len(loads(text, "p.yaml").data["b"]) == fits
    assert "alias" in refused(text.replace("*x]", "*x, *x]")).message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    err = refused("\n".join(lines) + "\n")
    assert "alias" in err.message


def test_key_length_limit_is_exact() -> None:
    assert loads(f"{'k' * MAX_KEY_LENGTH}: 1\n", "p.yaml").data
    assert "key longer" in refused(f"{'k' * (MAX_KEY_LENGTH + 1)}: 1\n").message


def test_size_limit_is_exact(tmp_path: Path) -> None:
    head = "a: 1\n#"
    exact = head + "x" * (MAX_BYTES - len(head) - 1) + "\n"
    assert len(exact.encode()) == MAX_BYTES
    assert loads(exact, "p.yaml").data == {"a": 1}
    too_big = refused(exact + "#")
    assert too_big.message.startswith("text larger") and too_big.line == 1
    big = tmp_path / "big.yaml"
    big.write_text(exact + "#")
    with pytest.raises(YamlSyntaxError, match=r"^file larger") as info:
        yamlsrc.load(big)
    assert info.value.line == 1
    ok = tmp_path / "ok.yaml"
    ok.write_text(exact)
    assert yamlsrc.load(ok).data == {"a": 1}


@pytest.mark.parametrize(("text", "line", "says"), [
    ("a: 1\nb: !!python/object:os.system {}\n", 2, "tag"),
    ("a: !!set {x: null}\n", 1, "tag"),
    ("a: !local [1]\n", 1, "tag"),
    ("a: 1\nb: !!binary aGVsbG8=\n", 2, "tag"),
    ("a: !!python/name:os.system ''\n", 1, "tag"),
    ("!!python/tuple [a]: 1\n", 1, "tag"),
    ("? [a]\n: 1\n", 1, "plain strings"),
    ("? {a: 1}\n: 1\n", 1, "plain strings"),
    ("a: 1\n!!python/str b: 2\n", 2, "tag"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate"),
    ("a: &x 1\n&y b: 2\n", 2, "anchors on mapping keys"),
    ("base: &b {x: 1}\nc:\n  <<: *b\n", 3, "merge"),  # libyaml: plain style is ''
    ("c:\n  <<: 1\n", 2, "merge"),
    ("c:\n  '<<': 1\n", 0, ""),  # quoted: a plain key that happens to read <<
    ("a: &x [1, *x]\n", 1, "contains it"),
    ("a: *nowhere\n", 1, "no anchor"),
    ("? *x\n: 1\n", 1, "no anchor"),
    ("a: 1\n---\nb: 2\n", 2, "more than one"),
    ("a: !!int twelve\n", 1, "not a valid int"),
    ("a: 1\nb: !!float x\n", 2, "not a valid float"),
])
def test_hostile_constructs_are_refused_at_their_line(text: str, line: int, says: str) -> None:
    if not says:
        assert loads(text, "p.yaml").data
        return
    err = refused(text)
    assert says in err.message, err.message
    assert err.line == line


@pytest.mark.parametrize("text", ["a: !!binary aGVsbG8=\n", "a: !local x\n", "a: !!set x\n",
                                  "a: !!python/none ''\n", "a: !!timestamp 2026-11-27\n"])
def test_scalar_tags_outside_the_core_schema_are_named(text: str) -> None:
    err = refused(text)
    assert err.message.startswith("YAML tag ") and "only plain values" in err.message


def test_aliased_list_items_are_located_at_the_alias() -> None:
    doc = loads("a: &x 1\nl:\n  - 2\n  - *x\n", "p.yaml")
    assert doc.data["l"] == [2, 1]
    assert doc.locs[("l", 1)].line == 4


def test_alias_as_a_key_is_refused() -> None:
    err = refused("k: &x a\n*x : 1\n")
    assert "plain strings" in err.message and err.line == 2


@pytest.mark.parametrize(("text", "value"), [
    ("a: !!str 123\n", "123"), ("a: ! 123\n", "123"), ("a: !!int '7'\n", 7),
    ("a: !!float 1.5\n", 1.5), ("a: !!bool true\n", True), ("a: !!null ''\n", None),
    ("a: 0x10\n", 16), ("a: yes\n", True), ("a: '1'\n", "1"),  # YAML 1.1 booleans
])
def test_core_schema_values(text: str, value: object) -> None:
    assert loads(text, "p.yaml").data["a"] == value


def test_timestamps_are_kept_for_the_schema_to_refuse() -> None:
    import datetime

    assert loads("a: 2026-11-27\n", "p.yaml").data["a"] == datetime.date(2026, 11, 27)


def test_nul_and_bad_bytes_report_their_line(tmp_path: Path) -> None:
    assert refused("a: 1\nb: x\0y\n").line == 2
    assert refused("\n\0").line == 2
    assert refused("\0").line == 1
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"a: 1\nb: 2\nc: caf\xe9\n")
    with pytest.raises(YamlSyntaxError) as info:
        yamlsrc.load(f)
    assert info.value.line == 3 and "UTF-8" in info.value.message
    err = refused("a: 1\nb: \x07\n")
    assert "control character" in err.message and err.line == 2


def test_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(YamlSyntaxError, match="cannot read") as info:
        yamlsrc.load(tmp_path / "missing.yaml")
    assert info.value.line == 1
    with pytest.raises(YamlSyntaxError, match="cannot read"):
        yamlsrc.load(tmp_path)


def test_locations_point_at_keys_and_items() -> None:
    doc = loads("a: 1\nlist:\n  - x\n  -\n    k: v\nm:\n  n: 2\n", "p.yaml")
    assert doc.locs[("a",)].line == 1
    assert doc.locs[("list",)].line == 2
    assert doc.locs[("list", 0)].line == 3
    assert doc.locs[("list", 1, "k")].line == 5
    assert doc.locs[("m", "n")].line == 7
    assert doc.loc(("m", "n", "missing", 3)).line == 7  # nearest ancestor
    assert doc.loc(("m", "n", "missing")).line == 7
    assert doc.loc(("nowhere",)).line == doc.locs[()].line


def test_syntax_errors_say_so_with_their_line() -> None:
    err = refused("a: 1\nb: [1, 2\nc: 3\n")
    assert err.message.startswith("YAML syntax error: ") and err.line == 3
    err = refused("a: 1\nb: c: d\n")
    assert "mapping values are not allowed" in err.message and err.line == 2


def test_empty_document_is_an_empty_mapping() -> None:
    doc = loads("# nothing\n", "p.yaml")
    assert doc.data == {} and doc.loc(()).line == 1


def test_aliased_values_are_copies() -> None:
    doc = loads("a: &x {k: [1]}\nb: *x\n", "p.yaml")
    doc.data["b"]["k"].append(2)
    assert doc.data["a"] == {"k": [1]}


def test_format_path() -> None:
    assert yamlsrc.format_path(()) == "."
    assert yamlsrc.format_path(("listeners", 0, "port")) == ".listeners[0].port"
