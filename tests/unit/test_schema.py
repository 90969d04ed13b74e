"""The schema is also the reference documentation: hold it to that."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

from relaykit.profile.load import load_schema


def _objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


def test_schema_is_valid_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_property_is_described() -> None:
    undocumented = [f"{path}/{name}" for path, obj in _objects(load_schema())
                    for name, prop in obj.get("properties", {}).items()
                    if not prop.get("description")]
    assert undocumented == []


def test_objects_with_properties_forbid_unknown_keys() -> None:
    open_objects = [path for path, obj in _objects(load_schema())
                    if "properties" in obj and obj.get("additionalProperties") is not False]
    assert open_objects == []


def test_defaults_validate_against_their_own_schema() -> None:
    for path, obj in _objects(load_schema()):
        for name, prop in obj.get("properties", {}).items():
            if "default" in prop:
                errors = list(jsonschema.Draft202012Validator(prop).iter_errors(prop["default"]))
                assert errors == [], f"{path}/{name}"


def test_profile_reference_is_current() -> None:
    from relaykit.schemadoc import reference_markdown

    from ..conftest import ROOT

    committed = (ROOT / "docs" / "profile-reference.md").read_text()
    assert committed == reference_markdown(), "run `invoke docs` and commit the result"
