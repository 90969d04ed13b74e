"""The YAML loader against hostile input: every limit at its boundary, every refused tag
and construct, the line of each refusal.

Written to kill the mutants of profile/yamlsrc.py that survived the other unit tests
(`invoke mutation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

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


# --- The documented limits, as numbers (README "YAML"), not as the module's constants:
# a test that reads MAX_DEPTH moves with it when the limit is changed by mistake.

def test_32_levels_of_nesting_and_not_33() -> None:
    assert loads(nested(32), "p.yaml").data
    err = refused("a: 1\nb: " + nested(32) + "\n")
    assert err.message == "nested deeper than 32 levels: not a profile" and err.line == 2


def test_one_megabyte_and_not_one_byte_more() -> None:
    head = "a: 1\n#"
    exact = head + "x" * (1_000_000 - len(head) - 1) + "\n"
    assert loads(exact, "p.yaml").data == {"a": 1}
    err = refused(exact + "#")
    assert err.message == "text larger than 1000000 bytes: not a profile" and err.line == 1
    # Multi-byte characters count as their UTF-8 bytes, not as characters.
    assert refused(exact[:-3] + "é\n\n").message.startswith("text larger")


def test_250000_nodes_and_not_one_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading 250,000 nodes twice takes seconds (test_yamlsrc.py loads them once): the
    # boundary is checked on a smaller limit, the number against the README.
    assert yamlsrc.MAX_NODES == 250_000
    monkeypatch.setattr(yamlsrc, "MAX_NODES", 100)

    def doc(items: int) -> str:  # a: 1 is 2 nodes; the root, b and the list 3 more
        return "a: 1\nb: [" + ", ".join("1" for _ in range(items)) + "]\n"

    assert len(loads(doc(100 - 5), "p.yaml").data["b"]) == 95
    err = refused(doc(100 - 4))
    assert err.message == "more than 100 YAML nodes: not a profile" and err.line == 2
    # Aliases count the nodes they copy.
    assert loads("a: &x [1, 2]\nb: [" + ", ".join(["*x"] * 31) + "]\n", "p.yaml").data
    assert refused("a: &x [1, 2]\nb: [" + ", ".join(["*x"] * 32) + "]\n").line == 2


def test_aliases_copy_10000_nodes_and_not_one_more() -> None:
    # Aliases of an anchored scalar: one node each.
    def doc(count: int) -> str:
        return "a: &x 1\nb: [" + ", ".join("*x" for _ in range(count)) + "]\n"

    assert len(loads(doc(10_000), "p.yaml").data["b"]) == 10_000
    err = refused(doc(10_001))
    assert err.line == 2
    assert err.message == ("aliases expand to more than 10000 nodes (alias bomb?): "
                           "write the values out")


def test_aliases_copy_1000000_characters_and_not_one_more() -> None:
    text = "s: &s " + "x" * 100_000 + "\nt: &t y\nb: [" + ", ".join(["*s"] * 10) + "]\n"
    assert len(loads(text, "p.yaml").data["b"]) == 10
    err = refused(text.replace("*s]", "*s,\n  *t]"))
    assert err.line == 4
    assert err.message == ("aliases expand to more than 1000000 characters (alias bomb?): "
                           "write the values out")


def test_keys_of_1000_characters_and_not_1001() -> None:
    assert loads(f"{'k' * 1000}: 1\n", "p.yaml").data
    err = refused(f"a: 1\n{'k' * 1001}: 1\n")
    assert err.message == "key longer than 1000 characters" and err.line == 2


# --- FILE:LINE of a bad character: on the first line, after a leading newline, on the
# last line without a final newline.

@pytest.mark.parametrize(("text", "line"), [
    ("\0a: 1\n", 1), ("\na: 1\0\n", 2), ("a: 1\nb: 2\nc: \0", 3),
])
def test_nul_is_named_at_its_line(text: str, line: int) -> None:
    err = refused(text)
    assert err.message == "NUL byte in the file" and err.line == line


@pytest.mark.parametrize(("raw", "line", "message"), [
    (b"\xe9: 1\n", 1, "not UTF-8 text (byte 0xe9 at offset 0)"),
    (b"\na: caf\xe9\n", 2, "not UTF-8 text (byte 0xe9 at offset 7)"),
    (b"a: 1\nb: 2\nc: \xff", 3, "not UTF-8 text (byte 0xff at offset 13)"),
])
def test_non_utf8_is_named_at_its_line(tmp_path: Path, raw: bytes, line: int,
                                        message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(raw)
    with pytest.raises(YamlSyntaxError) as info:
        yamlsrc.load(path, "p.yaml")
    assert (info.value.file, info.value.line, info.value.message) == ("p.yaml", line, message)


@pytest.mark.parametrize(("text", "line", "code"), [
    ("\x07a: 1\n", 1, "0x0007"), ("\nb: \x07\n", 2, "0x0007"),
    ("a: 1\nb: 2\nc: x\x1b", 3, "0x001b"),
    # libyaml reports the byte offset: multi-byte characters before must not move the line
    ("ééééééééé: 1\nb: \x07\nc: 1\nd: 1\n", 2, "0x0007"),
    ("€€€€€€€€€€: 1\nb: x\x9b\nc: 1\nd: 1\ne: 1\n", 2, "0x009b"),
    ("é: 1\n\nb: \ufffe\n", 3, "0xfffe"),
])
def test_control_characters_are_named_at_their_line(text: str, line: int, code: str) -> None:
    err = refused(text)
    assert err.message == f"character {code} is not allowed in YAML (control character)"
    assert err.line == line


@pytest.mark.parametrize(("text", "line", "code"), [
    ("\ud800: 1\n", 1, "0xd800"), ("\nb: \udfff\n", 2, "0xdfff"),
    ("a: 1\nb: x\udc80", 2, "0xdc80"),
])
def test_lone_surrogates_are_refused_not_a_crash(text: str, line: int, code: str) -> None:
    # Only a str can hold one (a file is decoded strictly), and loads() takes a str.
    err = refused(text)
    assert err.message == f"character {code} is not allowed in YAML (lone surrogate)"
    assert err.line == line


def test_a_syntax_error_gives_context_and_problem() -> None:
    err = refused("a: 1\nb: [1, 2\nc: 3\n")
    assert err.message.startswith("YAML syntax error: while parsing a flow sequence; ")
    assert "expected ',' or ']'" in err.message


# --- values: what the resolvers do not claim stays a string; what they claim outside
# the core schema is refused by name.

def test_plain_scalars_no_resolver_claims_are_strings() -> None:
    # Each starts with a character some implicit resolver (int, float, bool, null,
    # timestamp, merge, value) looks at, and matches none of them.
    values = ["1a", "nope", ".5x", "~x", "-x", "2026-11-27x", "trueish", "0o9", "+",
              "1_000x", "<<x", "==", "Yesterday", "offline", "null-route"]
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    assert list(loads(text, "p.yaml").data.values()) == values


@pytest.mark.parametrize(("text", "tag"), [
    ("a: 1\nb: =\n", "tag:yaml.org,2002:value"), ("a: 1\nb: <<\n", "tag:yaml.org,2002:merge"),
])
def test_resolved_types_outside_the_core_schema_are_named(text: str, tag: str) -> None:
    err = refused(text)
    assert err.message == f"YAML type {tag!r} is not allowed here" and err.line == 2


def test_scalars_leave_no_parser_nodes_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loader is bounded because it holds the data and its locations, nothing per
    # parsed scalar (a 1 MB profile has up to 250,000 of them).
    import weakref

    alive: list[weakref.ref[yaml.ScalarNode]] = []
    most = [0]

    class Counted(yaml.ScalarNode):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            alive[:] = [r for r in alive if r() is not None]
            alive.append(weakref.ref(self))
            most[0] = max(most[0], len(alive))

    monkeypatch.setattr(yaml, "ScalarNode", Counted)
    assert loads("a: [" + ", ".join(["1.5"] * 1000) + "]\n", "p.yaml").data["a"][999] == 1.5
    assert 1 <= most[0] <= 2


@pytest.mark.skipif(not yaml.__with_libyaml__,
                    reason="libyaml is not installed: the pure-Python parser is used")
def test_libyaml_is_the_parser() -> None:
    # libyaml (CSafeLoader), not the pure-Python parser: it refuses a surrogate escape
    # that PyYAML's own scanner lets through, and reads a tab after a colon as a space.
    err = refused('a: 1\nb: "\\ud800"\n')
    assert err.line == 2 and "invalid Unicode character escape code" in err.message
    assert loads("a:\tb\n", "p.yaml").data == {"a": "b"}


# --- what loads() returns

def test_an_empty_document_is_located_at_line_1() -> None:
    assert loads("", "p.yaml").locs == {(): yamlsrc.Loc("p.yaml", 1)}
    assert loads("# a comment\n\n", "p.yaml").locs == {(): yamlsrc.Loc("p.yaml", 1)}


def test_a_location_table_without_the_root_falls_back_to_line_1() -> None:
    # Located is built by other code too (extends: merges, stack builds).
    doc = yamlsrc.Located({}, {("a",): yamlsrc.Loc("p.yaml", 5)}, "p.yaml")
    assert doc.loc(("a", "b")) == yamlsrc.Loc("p.yaml", 5)
    assert doc.loc(("c",)) == yamlsrc.Loc("p.yaml", 1)
    assert doc.loc(()) == yamlsrc.Loc("p.yaml", 1)


# Characters an alias copies, wherever they sit in the anchored value: a string in a
# list, a string as a mapping's value, the mapping's keys.  Eleven copies of 100,000
# characters pass the 1,000,000 limit.
ANCHORED = {
    "list item": "[" + "x" * 100_000 + "]",
    "mapping value": "{k: " + "x" * 100_000 + "}",
    "mapping keys": "{" + ", ".join(f"{i:04d}{'k' * 996}: v" for i in range(100)) + "}",
}


@pytest.mark.parametrize("where", sorted(ANCHORED))
def test_every_character_an_alias_copies_counts(where: str) -> None:
    text = f"s: &s {ANCHORED[where]}\nb: [" + ", ".join(["*s"] * 11) + "]\n"
    err = refused(text)
    assert err.message == ("aliases expand to more than 1000000 characters (alias bomb?): "
                           "write the values out")
