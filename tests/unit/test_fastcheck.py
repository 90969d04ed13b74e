"""fastcheck must agree with jsonschema: same verdict on every document tried.

The corpus is the shipped profiles, every broken override of test_profile.py, and
each path of every shipped profile replaced, in turn, by values of every JSON type.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaykit.profile import fastcheck
from relaykit.profile.load import _validator, apply_defaults, load_schema, resolve_extends
from relaykit.profile.yamlsrc import loads

from .test_profile import BASE, BROKEN, REVIEWED

REPLACEMENTS: list[Any] = [None, True, 0, 7, -1, 2525.0, 1e9, "", "x", "a b", "bad\n",
                           "PLAIN", "[::1]/128", [], ["x"], [1, 1], {}, {"x": 1}]


def resolved(text: str, tmp_path: Path) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    data = resolve_extends(path, chain=()).data
    apply_defaults(load_schema(), data)
    return data


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def agree(doc: Any) -> None:
    authority = not any(True for _ in _validator().iter_errors(doc))
    # The profile schema uses only keywords fastcheck knows: it must always be sure.
    assert fastcheck.is_valid(load_schema(), doc) is authority, doc


@pytest.mark.parametrize("name", ["roaming", "satellite", "gazette-2007"])
def test_agrees_on_every_mutation_of_shipped_profiles(name: str, tmp_path: Path) -> None:
    doc = resolved(f"extends: {name}\nname: t\n", tmp_path)
    assert fastcheck.is_valid(load_schema(), doc) is True
    count = 0
    for path in paths(doc):
        if not path:
            continue
        for value in REPLACEMENTS:
            agree(replaced(doc, path, value))
            count += 1
    assert count > 500


@pytest.mark.parametrize("override", [b[0] for b in BROKEN + REVIEWED])
def test_agrees_on_broken_profiles(override: str, tmp_path: Path) -> None:
    agree(resolved(BASE + override, tmp_path))


def test_unknown_keyword_means_unsure() -> None:
    assert fastcheck.is_valid({"type": "string", "format": "email"}, "x") is None


def test_yaml_dates_are_not_strings(tmp_path: Path) -> None:
    doc = loads("version: 2026-11-27\n", "p.yaml").data
    assert fastcheck.is_valid({"properties": {"version": {"type": "string"}}}, doc) is False


@pytest.mark.parametrize("count", [64, 65])
def test_agrees_on_max_items(count: int, tmp_path: Path) -> None:
    """maxItems (listeners: at most 64) is a keyword fastcheck knows, both ways."""
    doc = resolved(BASE, tmp_path)
    listener = doc["listeners"][0]
    doc["listeners"] = [{**listener, "name": f"l{i}", "port": 2000 + i} for i in range(count)]
    agree(doc)
    assert fastcheck.is_valid(load_schema(), doc) is (count <= 64)
