from __future__ import annotations

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
