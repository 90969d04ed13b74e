"""A fast yes/no check of a document against the profile schema.

jsonschema is the authority: it reports every error with its path.  Importing it costs
~40 ms, a fifth of a config-only image rebuild, so a valid document (the usual case)
is confirmed here first, with the few keywords schema/profile.schema.json uses.  Any
doubt, a keyword this module does not know included, answers "not sure" and the caller
asks jsonschema.  tests/unit/test_fastcheck.py holds both to the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from functools import cache
from typing import Any

ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default"})
TYPES: dict[str, Any] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    # As in profile.py: 2525.0 is not an integer for Postfix.
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
}


class Unsure(Exception):
    """The schema uses something this checker does not implement."""


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def is_valid(schema: dict[str, Any], value: Any) -> bool | None:
    """True or False when sure; None when jsonschema must decide."""
    try:
        return _valid(schema, value)
    except Unsure:
        return None


LEAF_KEYWORDS = frozenset({"type", "minLength", "maxLength", "pattern"})
_LEAVES: dict[int, tuple[Any, Any]] = {}


def _leaf(schema: dict[str, Any]) -> Any:
    """A string-only schema (type string, lengths, pattern) as one predicate: access
    maps with 100,000 entries are checked entry by entry (the schema lives as long as
    the process, so its id is a stable key; the schema is kept to pin it)."""
    cached = _LEAVES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    keys = set(schema) - ANNOTATIONS
    pred = None
    if keys <= LEAF_KEYWORDS and schema.get("type") == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        regex = _regex(schema["pattern"]) if "pattern" in schema else None

        def pred(value: Any) -> bool:
            return isinstance(value, str) and lo <= len(value) and \
                (hi is None or len(value) <= hi) and \
                (regex is None or regex.search(value) is not None)
    _LEAVES[id(schema)] = (schema, pred)
    return pred


def _valid(schema: Any, value: Any) -> bool:
    if isinstance(schema, dict):
        leaf = _leaf(schema)
        if leaf is not None:
            return bool(leaf(value))
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise Unsure(schema)
    for key, arg in schema.items():
        if key in ANNOTATIONS:
            continue
        check = KEYWORDS.get(key)
        if check is None:
            raise Unsure(key)
        if not check(arg, value, schema):
            return False
    return True


def _type(arg: Any, value: Any, _s: Any) -> bool:
    names = [arg] if isinstance(arg, str) else arg
    return any(TYPES[n](value) for n in names)


def _properties(arg: Any, value: Any, _s: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(_valid(sub, value[k]) for k, sub in arg.items() if k in value)


def _additional(arg: Any, value: Any, schema: Any) -> bool:
    if not isinstance(value, dict):
        return True
    known = schema.get("properties", {})
    return all(_valid(arg, v) for k, v in value.items() if k not in known)


def _required(arg: Any, value: Any, _s: Any) -> bool:
    return not isinstance(value, dict) or all(k in value for k in arg)


def _items(arg: Any, value: Any, _s: Any) -> bool:
    return not isinstance(value, list) or all(_valid(arg, v) for v in value)


def _unique(arg: Any, value: Any, _s: Any) -> bool:
    if not arg or not isinstance(value, list):
        return True
    seen: list[Any] = []
    for item in value:
        # JSON equality: 1 and True differ, 1 and 1.0 do not.
        key = (type(item) is bool, item)
        if key in seen:
            return False
        seen.append(key)
    return True


def _enum(arg: Any, value: Any, _s: Any) -> bool:
    return any(value == a and (type(value) is bool) == (type(a) is bool) for a in arg)


def _pattern(arg: Any, value: Any, _s: Any) -> bool:
    return not isinstance(value, str) or _regex(arg).search(value) is not None


def _property_names(arg: Any, value: Any, _s: Any) -> bool:
    return not isinstance(value, dict) or all(_valid(arg, k) for k in value)


def _bound(test: Any) -> Any:
    def check(arg: Any, value: Any, _s: Any) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return not number or test(value, arg)
    return check


def _length(test: Any, kind: type[Sized]) -> Any:
    def check(arg: Any, value: Any, _s: Any) -> bool:
        return not isinstance(value, kind) or bool(test(len(value), arg))
    return check


KEYWORDS: dict[str, Any] = {
    "type": _type, "properties": _properties, "additionalProperties": _additional,
    "required": _required, "items": _items, "uniqueItems": _unique, "enum": _enum,
    "pattern": _pattern, "propertyNames": _property_names,
    "minimum": _bound(lambda v, a: v >= a), "maximum": _bound(lambda v, a: v <= a),
    "minLength": _length(lambda n, a: n >= a, str), "maxLength": _length(lambda n, a: n <= a, str),
    "minItems": _length(lambda n, a: n >= a, list), "maxItems": _length(lambda n, a: n <= a, list),
}
