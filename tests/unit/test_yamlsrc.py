from __future__ import annotations

from pathlib import Path

import pytest

from relaykit.profile.yamlsrc import YamlSyntaxError, format_path, loads

DOC = """\
name: x
listeners:
  - name: a
    port: 25
  - name: b
    port: 587
"""


def test_every_path_has_its_source_line() -> None:
    doc = loads(DOC, "p.yaml")
    assert doc.locs[("name",)].line == 1
    assert doc.locs[("listeners", 1, "port")].line == 6
    assert doc.locs[("listeners", 0)].line == 3


def test_missing_path_falls_back_to_nearest_ancestor() -> None:
    doc = loads(DOC, "p.yaml")
    assert doc.loc(("listeners", 1, "tls")).line == 5


def test_scalars_keep_yaml_types() -> None:
    doc = loads("a: 25\nb: 'x'\nc: true\nd: null\n", "p.yaml")
    assert doc.data == {"a": 25, "b": "x", "c": True, "d": None}


def test_duplicate_key_is_an_error_with_its_line() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        loads("a: 1\nb: 2\na: 3\n", "p.yaml")
    assert info.value.line == 3 and "duplicate key 'a'" in info.value.message


def test_syntax_error_has_line() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        loads("a: 1\nb: [1, 2\nc: 3\n", "p.yaml")
    assert info.value.line >= 2


def test_format_path() -> None:
    assert format_path(()) == "."
    assert format_path(("listeners", 0, "port")) == ".listeners[0].port"


# --- limits ----------------------------------------------------------------------------

def test_nesting_limit_is_exact() -> None:
    from relaykit.profile.yamlsrc import MAX_DEPTH

    ok = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    loads(ok, "p.yaml")
    too_deep = "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    with pytest.raises(YamlSyntaxError, match="nested deeper"):
        loads(too_deep, "p.yaml")


def test_node_limit() -> None:
    from relaykit.profile.yamlsrc import MAX_NODES

    with pytest.raises(YamlSyntaxError, match="YAML nodes"):
        loads("a: [" + "1," * MAX_NODES + "1]\n", "p.yaml")


def test_alias_budget_counts_expanded_nodes() -> None:
    from relaykit.profile.yamlsrc import MAX_ALIAS_NODES

    base = "a: &a [" + ",".join(["x"] * 99) + "]\n"  # 100 nodes with its list
    fits = base + "b: [" + ",".join(["*a"] * (MAX_ALIAS_NODES // 100)) + "]\n"
    assert len(loads(fits, "p.yaml").data["b"]) == MAX_ALIAS_NODES // 100
    over = base + "b: [" + ",".join(["*a"] * (MAX_ALIAS_NODES // 100 + 1)) + "]\n"
    with pytest.raises(YamlSyntaxError, match="alias bomb"):
        loads(over, "p.yaml")


def test_aliases_are_copies_located_at_the_alias() -> None:
    doc = loads("a: &x {k: 1}\nb: *x\n", "p.yaml")
    assert doc.data == {"a": {"k": 1}, "b": {"k": 1}}
    assert doc.data["a"] is not doc.data["b"]
    assert doc.loc(("b", "k")).line == 2


@pytest.mark.parametrize("text,line,what", [
    ("a: 1\nb: !!python/tuple [1]\n", 2, "tag"),
    ("a: 1\nb: !!map {c: 1}\n", 2, "tag"),
    ("a: !!int x\n", 1, "not a valid int"),
    ("a: 1\n\nb: *missing\n", 3, "no anchor"),
    ("a: &s [1, *s]\n", 1, "contains it"),
    ("a: 1\n---\nb: 1\n", 2, "more than one"),
    ("a: 1\nb: 2\n\x00", 3, "NUL"),
    ("a: 1\n<<: {b: 1}\n", 2, "merge"),
    ("a: 1\n? [x]\n: 1\n", 2, "plain strings"),
    ("a: 1\nb: x\x07y\n", 2, "character 0x0007 is not allowed"),
])
def test_refusals_carry_their_line(text: str, line: int, what: str) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        loads(text, "p.yaml")
    assert info.value.line == line and what in info.value.message, info.value.message


def test_non_utf8_reports_the_line_of_the_byte(tmp_path: Path) -> None:
    from relaykit.profile.yamlsrc import load

    path = tmp_path / "p.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: caf\xe9\n")
    with pytest.raises(YamlSyntaxError) as info:
        load(path)
    assert info.value.line == 3 and "UTF-8" in info.value.message


def test_size_limit(tmp_path: Path) -> None:
    from relaykit.profile.yamlsrc import MAX_BYTES, load

    path = tmp_path / "p.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * MAX_BYTES)
    with pytest.raises(YamlSyntaxError, match="larger than"):
        load(path)


def test_implicit_types_match_pyyaml_safe_load() -> None:
    import yaml

    text = ("a: 1\nb: 1.5\nc: true\nd: ~\ne: 'x'\nf: no\ng: 0x1f\nh: 1e3\ni: .inf\n"
            "j: -2\nk: 2026-11-27\nl: null\nm: Yes\nn: '1'\no: !!str 5\np: ''\nq:\n")
    assert loads(text, "p.yaml").data == yaml.safe_load(text)
