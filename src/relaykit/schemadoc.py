"""Generate docs/profile-reference.md from the schema: one source for both."""

from __future__ import annotations

import json
from typing import Any

from relaykit.profile.load import load_schema

INTRO = """\
# Profile reference

Generated from `schema/profile.schema.json` by `invoke docs`; do not edit by hand.
Paths are written as in validation errors (`.listeners[].port`).

| field | type | default | description |
|---|---|---|---|
"""


def _type(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in prop:
        text = " \\| ".join(f"`{v}`" for v in prop["enum"])
    elif kind == "array" and isinstance(prop.get("items"), dict) and "enum" in prop["items"]:
        text = "list of " + " \\| ".join(f"`{v}`" for v in prop["items"]["enum"])
    return text


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop or prop["default"] in ({}, None):
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _rows(schema: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        desc = str(prop.get("description", "")).replace("|", "\\|")
        if name in required:
            desc = "**required.** " + desc
        rows.append(f"| `{path}` | {_type(prop)} | {_default(prop)} | {desc} |\n")
        rows += _nested(prop, path)
    return rows


def _nested(prop: dict[str, Any], path: str) -> list[str]:
    if "properties" in prop:
        return _rows(prop, path, set(prop.get("required", [])))
    items = prop.get("items")
    if isinstance(items, dict) and "properties" in items:
        return _rows(items, path + "[]", set(items.get("required", [])))
    extra = prop.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        return _rows(extra, path + ".<name>", set(extra.get("required", [])))
    return []


def reference_markdown() -> str:
    schema = load_schema()
    return INTRO + "".join(_rows(schema, "", set(schema.get("required", []))))
