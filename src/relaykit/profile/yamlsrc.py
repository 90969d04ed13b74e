"""The ONE YAML loader: safe, bounded, and remembering where every value came from.

PyYAML's constructors drop source marks and its composer trusts its input (recursion on
deep nesting, exponential alias expansion, tags on collections silently ignored), so we
build values ourselves from the parser's event stream (libyaml when available):

- limits: file size, nesting depth, node count, alias expansion (an alias bomb is
  refused by arithmetic on node counts, before anything is copied);
- core-schema tags only: str, int, float, bool, null on scalars; no tag at all on a
  mapping or sequence; anything else (``!!python/...``, ``!!binary``, ``!local``) is an
  error;
- NUL bytes, non-UTF-8 and non-printable characters are errors with their line;
- an alias to a node that is still open (self reference) or never defined is an error.

Every path is recorded with the file and line that wrote it, so errors downstream
(schema, policy) are reported as FILE:LINE: .path: message.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 250_000  # a 100,000-entry map is 200,001 nodes; 1 MB of `1,` would be 500,000
MAX_ALIAS_NODES = 10_000  # nodes an alias may copy, all aliases together
# Characters aliases may copy, all together: counting nodes alone let 9,000 aliases of
# one 850 kB string through (7.6 GB of text for the checks to read).
MAX_ALIAS_CHARS = 1_000_000
MAX_KEY_LENGTH = 1_000

_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STR = "tag:yaml.org,2002:str"
CORE_SCALAR_TAGS = frozenset({
    STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    # Resolved implicitly from plain scalars like 2026-11-27; the schema refuses them
    # with a hint to quote the value.
    "tag:yaml.org,2002:timestamp",
})
EXPLICIT_SCALAR_TAGS = frozenset({"!", STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                  "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


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
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlSyntaxError(name, 1, f"cannot read the file: {exc.strerror}") from None
    return loads(decode(raw, name), name)


def decode(raw: bytes, name: str) -> str:
    """Bytes -> text, refusing what is too large or not UTF-8, with the line at fault."""
    if len(raw) > MAX_BYTES:
        raise YamlSyntaxError(name, 1, f"file larger than {MAX_BYTES} bytes: not a profile")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlSyntaxError(name, line, f"not UTF-8 text (byte {raw[exc.start]:#04x} at "
                              f"offset {exc.start})") from None


def loads(text: str, name: str) -> Located:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: a str can hold one, a file not
        raise YamlSyntaxError(name, text.count("\n", 0, exc.start) + 1,
                              f"character {ord(text[exc.start]):#06x} is not allowed in YAML "
                              "(lone surrogate)") from None
    if size > MAX_BYTES:
        raise YamlSyntaxError(name, 1, f"text larger than {MAX_BYTES} bytes: not a profile")
    nul = text.find("\0")
    if nul >= 0:
        raise YamlSyntaxError(name, text.count("\n", 0, nul) + 1, "NUL byte in the file")
    builder = _Builder(name)
    try:
        builder.run(yaml.parse(text, Loader=_PARSER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(name, line, _yaml_problem(exc)) from None
    except yaml.YAMLError as exc:  # reader errors (bad characters) carry no mark object
        raise YamlSyntaxError(name, _reader_line(text, exc), _reader_problem(exc)) from None
    if builder.result is None:
        return Located({}, {(): Loc(name, 1)}, name)
    return Located(builder.result, builder.locs, name)


def _reader_line(text: str, exc: yaml.YAMLError) -> int:
    """The line of the character a reader error names.  Not from its position: libyaml
    counts bytes of the UTF-8 text there (PyYAML characters), so every multi-byte
    character before it pushed the line down.  The first occurrence is the one at fault:
    a refused character is refused wherever it is."""
    character = getattr(exc, "character", None)
    if not isinstance(character, int):
        return 1
    return text.count("\n", 0, text.find(chr(character))) + 1


def _reader_problem(exc: yaml.YAMLError) -> str:
    character = getattr(exc, "character", None)
    if isinstance(character, int):
        return f"character {character:#06x} is not allowed in YAML (control character)"
    return "YAML error: " + str(exc).splitlines()[0]


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "YAML syntax error: " + "; ".join(parts)


@dataclass
class _Open:
    """A collection being built: where it goes, and what it holds so far."""

    path: PathKey
    value: Any
    anchor: str | None
    line: int
    nodes_before: int  # the node count before this collection: its size is the difference
    key: tuple[str, int] | None = None  # mapping: the key waiting for its value


class _Builder:
    """Turns parser events into plain values plus locations, within the limits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.locs: dict[PathKey, Loc] = {}
        self.loc_cache: dict[int, Loc] = {}
        self.stack: list[_Open] = []
        # anchor -> (value, node count, characters)
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.nodes = 0
        self.alias_nodes = 0
        self.alias_chars = 0
        self.documents = 0
        self.result: Any = None
        self.implicit: dict[str, list[tuple[str, Any]]] = \
            yaml.resolver.Resolver.yaml_implicit_resolvers
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, event: Any, message: str) -> YamlSyntaxError:
        return YamlSyntaxError(self.name, event.start_mark.line + 1, message)

    def run(self, events: Any) -> None:
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self.scalar(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self.start_collection(event)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = self.stack.pop()
                self.remember(done.anchor, done.value, self.nodes - done.nodes_before)
                self.place(done.value, done.line)
            elif kind is yaml.AliasEvent:
                self.alias(event)
            elif kind is yaml.DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    raise self.fail(event, "more than one YAML document: a profile is one "
                                    "mapping")

    # --- values ------------------------------------------------------------------------

    def start_collection(self, event: Any) -> None:
        if event.tag is not None:
            raise self.fail(event, f"YAML tag {event.tag!r} on a "
                            f"{'mapping' if isinstance(event, yaml.MappingStartEvent) else 'list'}:"
                            " profiles use plain YAML only, remove the tag")
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(event, f"nested deeper than {MAX_DEPTH} levels: not a profile")
        self.count(event, 1)
        line = event.start_mark.line + 1
        if self.stack and isinstance(self.stack[-1].value, dict) and self.stack[-1].key is None:
            raise self.fail(event, "mapping keys must be plain strings")
        path = self.child_path(event)
        value: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Open(path, value, event.anchor, line, self.nodes - 1))

    def scalar(self, event: Any) -> None:
        self.count(event, 1)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.key is None and isinstance(top.value, dict):
            self.key(event, top)
            return
        value = self.construct(event)
        if event.anchor is not None:
            self.remember(event.anchor, value, 1)
        self.place(value, event.start_mark.line + 1)

    def key(self, event: Any, top: _Open) -> None:
        if event.anchor is not None:
            raise self.fail(event, "anchors on mapping keys are not supported")
        if event.tag is None and event.value == "<<" and event.implicit[0]:  # plain <<
            raise self.fail(event, "YAML merge keys (<<) are not supported; use extends:")
        if event.tag is not None and event.tag not in EXPLICIT_SCALAR_TAGS:
            raise self.fail(event, f"YAML tag {event.tag!r} on a key: remove it")
        key = str(event.value)
        if len(key) > MAX_KEY_LENGTH:
            raise self.fail(event, f"key longer than {MAX_KEY_LENGTH} characters")
        if key in top.value:  # values are placed before the next key is read
            raise self.fail(event, f"duplicate key {key!r}")
        top.key = (key, event.start_mark.line + 1)

    def alias(self, event: Any) -> None:
        name = event.anchor
        if any(open_.anchor == name for open_ in self.stack):
            raise self.fail(event, f"alias *{name} refers to the node that contains it")
        if name not in self.anchors:
            raise self.fail(event, f"alias *{name} names no anchor defined before it")
        if self.stack and isinstance(self.stack[-1].value, dict) and self.stack[-1].key is None:
            raise self.fail(event, "mapping keys must be plain strings")
        value, nodes, chars = self.anchors[name]
        self.alias_nodes += nodes
        self.alias_chars += chars
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise self.fail(event, f"aliases expand to more than {MAX_ALIAS_NODES} nodes "
                            "(alias bomb?): write the values out")
        if self.alias_chars > MAX_ALIAS_CHARS:
            raise self.fail(event, f"aliases expand to more than {MAX_ALIAS_CHARS} "
                            "characters (alias bomb?): write the values out")
        self.count(event, nodes)
        # A copy: later steps (defaults) fill values in place, per path.
        self.place(copy.deepcopy(value), event.start_mark.line + 1)

    def construct(self, event: Any) -> Any:
        if event.tag is None and (not event.implicit[0] or
                                  event.value[:1] not in self.implicit):
            return event.value  # quoted, or plain that no resolver claims: a string
        if event.tag is not None and event.tag not in EXPLICIT_SCALAR_TAGS:
            raise self.fail(event, f"YAML tag {event.tag!r}: only plain values (strings, "
                            "numbers, booleans, null) are allowed")
        if event.tag == "!":
            return event.value
        tag = event.tag or self.resolve(event)
        if tag == STR:
            return event.value
        if tag not in CORE_SCALAR_TAGS:
            raise self.fail(event, f"YAML type {tag!r} is not allowed here")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                               event.style)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.fail(event, f"{event.value!r} is not a valid {tag.rsplit(':', 1)[-1]}:"
                            f" {exc}") from None
        finally:
            self.constructor.constructed_objects.clear()
        if isinstance(value, datetime.datetime | datetime.date) or value is None or \
                isinstance(value, bool | int | float | str):
            return value
        raise self.fail(event, f"YAML value of type {type(value).__name__} is not allowed")

    def resolve(self, event: Any) -> str:
        """The implicit tag of an untagged scalar: quoted ones are strings; plain ones
        are matched against the resolvers for their first character, as PyYAML does."""
        if not event.implicit[0]:
            return STR
        value: str = event.value
        for tag, regexp in self.implicit.get(value[:1], ()):
            if regexp.match(value):
                return str(tag)
        return STR

    # --- bookkeeping -------------------------------------------------------------------

    def count(self, event: Any, nodes: int) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise self.fail(event, f"more than {MAX_NODES} YAML nodes: not a profile")

    def remember(self, anchor: str | None, value: Any, nodes: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, nodes, _chars(value))

    def child_path(self, event: Any) -> PathKey:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, dict):
            assert top.key is not None
            return (*top.path, top.key[0])
        return (*top.path, len(top.value))

    def loc(self, line: int) -> Loc:
        found = self.loc_cache.get(line)
        if found is None:
            found = self.loc_cache[line] = Loc(self.name, line)
        return found

    def place(self, value: Any, line: int) -> None:
        if not self.stack:
            self.result = value
            self.locs[()] = self.loc(line)
            return
        top = self.stack[-1]
        if isinstance(top.value, dict):
            assert top.key is not None
            key, key_line = top.key
            top.value[key] = value
            # A key's path points at the key itself: the line a human looks for.
            self.locs[(*top.path, key)] = self.loc(key_line)
            top.key = None
        else:
            self.locs[(*top.path, len(top.value))] = self.loc(line)
            top.value.append(value)


def _chars(root: Any) -> int:
    """Characters in a value's keys and scalars (iterative: no recursion limit)."""
    total, stack = 0, [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            total += sum(len(str(k)) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            total += len(str(node))
    return total
