"""YAML loading that remembers where every value came from.

PyYAML's constructors drop source marks, so we compose the node graph ourselves and
record, for every JSON path, the file and line that wrote it.  Errors downstream
(schema, policy) are then reported as FILE:LINE: .path: message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Loc:
    file: str
    line: int  # 1-based


@dataclass
class Located:
    """A parsed document plus the location of each path in it."""

    data: Any
    locs: dict[PathKey, Loc]
    file: str

    def loc(self, path: PathKey) -> Loc:
        """Location of path, or of its nearest ancestor that exists in the source."""
        for cut in range(len(path), -1, -1):
            found = self.locs.get(tuple(path[:cut]))
            if found is not None:
                return found
        return Loc(self.file, 1)


class YamlSyntaxError(Exception):
    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.message = message


def format_path(path: PathKey) -> str:
    """('listeners', 0, 'port') -> '.listeners[0].port'; () -> '.'"""
    if not path:
        return "."
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def load(path: Path, display: str | None = None) -> Located:
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(name, 1, f"not UTF-8 text: {exc}") from None
    return loads(text, name)


def loads(text: str, name: str) -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(name, line, _yaml_problem(exc)) from None
    locs: dict[PathKey, Loc] = {}
    if node is None:
        return Located({}, {(): Loc(name, 1)}, name)
    data = _convert(node, (), locs, name)
    return Located(data, locs, name)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "YAML syntax error: " + "; ".join(parts)


def _convert(node: yaml.Node, path: PathKey, locs: dict[PathKey, Loc], name: str) -> Any:
    locs[path] = Loc(name, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, locs, name)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), locs, name) for i, item in enumerate(node.value)]
    # Scalars: let SafeLoader resolve the tag (int, bool, null, ...).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise YamlSyntaxError(name, node.start_mark.line + 1, str(exc.problem)) from None
    finally:
        loader.dispose()


def _convert_mapping(
    node: yaml.MappingNode, path: PathKey, locs: dict[PathKey, Loc], name: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise YamlSyntaxError(name, line,
                                  "YAML merge keys (<<) are not supported; use extends:")
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlSyntaxError(name, line, "mapping keys must be plain strings")
        key = str(key_node.value)
        if key in out:
            raise YamlSyntaxError(name, line, f"duplicate key {key!r}")
        out[key] = _convert(value_node, (*path, key), locs, name)
        # Point a key's path at the key itself: that is the line a human looks for.
        locs[(*path, key)] = Loc(name, line)
    return out
