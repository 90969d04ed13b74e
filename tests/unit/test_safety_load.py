"""Loading a profile: where it is looked for, what `extends:` may name, and that every
refusal is a clear error with its file and line, never a traceback.

Written to kill the mutants of profile/load.py (and the yamlsrc paths it reaches) that
survived the other unit tests (`invoke mutation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relaykit.errors import ProfileError, RelaykitError
from relaykit.profile import load
from relaykit.profile.load import load_profile, locate


def refused(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    out = [d.format() for d in info.value.diagnostics]
    assert out
    return out


def test_path_length_limit() -> None:
    with pytest.raises(RelaykitError) as info:
        locate("/" + "x" * 4090 + ".yaml")  # 4096 characters: looked up (and not found)
    assert "longer than" not in info.value.message
    with pytest.raises(RelaykitError, match="longer than 4096"):
        locate("/" + "x" * 4091 + ".yaml")


def test_no_profile_given() -> None:
    with pytest.raises(RelaykitError, match="no profile given") as info:
        locate("")
    assert "--profile" in info.value.hint


def test_missing_file_and_the_shipped_name_hint(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RelaykitError, match="profile file not found") as info:
        locate("roaming.yaml")
    assert info.value.hint == "a shipped profile is named without .yaml: roaming"
    with pytest.raises(RelaykitError, match="profile file not found") as info:
        locate("nonesuch.yaml")
    assert info.value.hint == "check the path, or use a shipped profile name"
    with pytest.raises(RelaykitError, match="profile file not found") as info:
        locate("sub/roaming.yaml")
    assert info.value.hint == "check the path, or use a shipped profile name"


def test_paths_are_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    parent = tmp_path / "sub" / "parent.yaml"
    parent.write_text("extends: roaming\nname: parent\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: sub/parent.yaml\nname: child\n")
    assert load_profile(str(child)).profile.name == "child"
    assert locate("parent.yaml", relative_to=parent) == parent


@pytest.mark.parametrize(("text", "says", "line"), [
    ("- a\n- b\n", "must be a YAML mapping", 1),
    ("name: x\nextends: 5\n", "extends must be a profile name or path", 2),
    ("name: x\nextends: ''\n", "extends must be a profile name or path", 2),
    ("name: x\nextends: nonesuch\n", "no shipped profile named 'nonesuch'", 2),
    ("name: x\nextends: ./missing.yaml\n", "profile file not found", 2),
    ("name: x\nextends: ./p.yaml\n", "extends cycle", 2),
])
def test_bad_documents_and_extends(tmp_path: Path, text: str, says: str, line: int) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    out = refused(path)
    assert any(says in o and f"p.yaml:{line}:" in o for o in out), out


def test_extends_depth_limit(tmp_path: Path) -> None:
    depth = load.MAX_EXTENDS_DEPTH
    (tmp_path / "p0.yaml").write_text("extends: roaming\nname: p0\n")
    for i in range(1, depth + 2):
        (tmp_path / f"p{i}.yaml").write_text(f"extends: ./p{i - 1}.yaml\nname: p{i}\n")
    assert load_profile(str(tmp_path / f"p{depth - 1}.yaml")).profile.name == f"p{depth - 1}"
    out = refused(tmp_path / f"p{depth}.yaml")
    assert any("extends chain deeper" in o for o in out), out


def test_unknown_key_hints(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\npostfix:\n  main_cf: {}\n  myhostnam: x\n")
    assert any("did you mean 'myhostname'?" in o for o in refused(path))
    path.write_text("extends: roaming\nname: t\nzzzzzz: 1\n")
    assert any("allowed here:" in o and "listeners" in o for o in refused(path))


def test_yaml_errors_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nlisteners: [\n")
    out = refused(path)
    assert any("p.yaml:" in o and "YAML" in o for o in out), out
    path.write_text("name: x\nversion: =\n")
    assert any("p.yaml:2:" in o for o in refused(path))


@pytest.mark.parametrize(("text", "says"), [
    ("version: 2026-11-27\n", "quote it"),
    ("version: [1]\n", "expected string"),
])
def test_type_errors_explain_themselves(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\n" + text)
    assert any(says in o for o in refused(path))


def test_yml_paths_and_the_shipped_list_in_the_hint(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yml").write_text("extends: roaming\nname: mine\n")
    assert locate("mine.yml") == Path("mine.yml")
    with pytest.raises(RelaykitError) as info:
        locate("nonesuch")
    assert info.value.hint.startswith("shipped profiles: gazette-2007, roaming, satellite;")


def test_errors_come_before_warnings(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    # A warning on an early line (weak mechanism), an error on a later one.
    path.write_text("extends: gazette-2007\nname: t\nsasl:\n  mechanisms: [CRAM-MD5]\n"
                    "postfix:\n  mynetworks: [0.0.0.0/0]\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    levels = [d.level.value for d in info.value.diagnostics]
    assert levels[0] == "error" and "warning" in levels
    assert levels == sorted(levels)  # "error" < "warning": every error first


def test_suites_come_from_relaykit_debian(tmp_path: Path) -> None:
    from relaykit import debian

    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\nbase: {suite: hamm}\n")
    out = refused(path)
    assert any(".base.suite" in o and debian.DEFAULT_SUITE in o for o in out), out
    path.write_text("extends: satellite\nname: t\nbase: {}\n")
    data = load_profile(str(path)).resolved
    assert data["base"]["suite"] == debian.DEFAULT_SUITE


def diags(tmp_path: Path, text: str) -> list[tuple[str, str, str, str]]:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\n" + text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    return [(d.code, d.path, d.message, d.hint) for d in info.value.diagnostics]


@pytest.mark.parametrize(("text", "code", "path", "message", "hint"), [
    ("listeners:\n  - {name: a, port: '25', tls: none, auth: false}\n", "type",
     ".listeners[0].port", "expected integer, got string '25'", "TCP port"),
    ("listeners:\n  - {name: a, port: 25, tls: none, auth: false, address: 5}\n", "type",
     ".listeners[0].address", "expected string or null, got integer 5", "Bind address"),
    ("listeners:\n  - {name: a, port: 25, tls: maybe, auth: false}\n", "enum",
     ".listeners[0].tls", "'maybe' is not allowed", 'use one of: "none", "starttls"'),
    ("listeners:\n  - {name: a, port: 25, auth: false}\n", "required", ".listeners[0]",
     "missing required field 'tls'", "add `tls:` ("),
    ("postfix:\n  myhostname: 'bad host'\n", "pattern", ".postfix.myhostname",
     "'bad host' is not a valid value here", ""),
])
def test_schema_errors_say_what_and_how(tmp_path: Path, text: str, code: str, path: str,
                                        message: str, hint: str) -> None:
    found = diags(tmp_path, text)
    hits = [d for d in found if d[0] == code and d[1] == path]
    assert hits, found
    assert hits[0][2].startswith(message), hits[0]
    assert hits[0][3].startswith(hint) and (hint or hits[0][3]), hits[0]


def test_unknown_field_lists_what_is_allowed(tmp_path: Path) -> None:
    found = diags(tmp_path, "tls:\n  zzzzzz: 1\n")
    hint = next(d[3] for d in found if d[0] == "unknown-field")
    assert hint.startswith("allowed here: cert_file, ")


@pytest.mark.parametrize("text", ["postfix: 5\n", "postfix: [a]\n", "listeners: {a: 1}\n",
                                  "sasl: text\n", "restrictions: 5\n", "listeners: [5]\n",
                                  "listeners: [[1]]\n"])
def test_a_section_of_the_wrong_type_is_an_error_not_a_crash(tmp_path: Path,
                                                             text: str) -> None:
    found = diags(tmp_path, text)
    assert any(d[0] == "type" for d in found), found


def test_locations_are_shown_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.yaml").write_text("extends: roaming\nname: t\npostfix: 5\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as info:
        load_profile("p.yaml")
    assert {d.file for d in info.value.diagnostics} == {"p.yaml"}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(ProfileError) as info:
        load_profile(str(tmp_path / "p.yaml"))
    assert {d.file for d in info.value.diagnostics} == {str((tmp_path / "p.yaml").resolve())}


@pytest.mark.parametrize(("value", "shown"), [
    ("true", "got boolean true"), ("1.5", "got number 1.5"), ("[1]", "got list [1]"),
    ("{a: 1}", 'got mapping {"a": 1}'), ("null", "got null null"), ("'x'", "got string 'x'"),
])
def test_type_errors_name_the_type_found(tmp_path: Path, value: str, shown: str) -> None:
    found = diags(tmp_path, f"listeners:\n  - {{name: a, port: {value}, tls: none, "
                  "auth: false}\n")
    messages = [d[2] for d in found if d[1] == ".listeners[0].port"]
    assert any(m == f"expected integer, {shown}" for m in messages), found


@pytest.mark.parametrize(("length", "cut"), [(60, False), (61, True)])
def test_long_values_are_shortened_in_messages(tmp_path: Path, length: int, cut: bool) -> None:
    value = "x" * (length - 4) + " y"  # shown quoted: two more characters
    found = diags(tmp_path, f"postfix:\n  myhostname: '{value}'\n")
    message = next(d[2] for d in found if d[1] == ".postfix.myhostname")
    assert len(repr(value)) == length
    text = repr(value)[:57] + "..." if cut else repr(value)
    assert message == f"{text} is not a valid value here", message


def test_missing_field_hint_quotes_its_description(tmp_path: Path) -> None:
    import json

    from relaykit.paths import schema_file

    schema = json.loads(schema_file().read_text())
    desc = schema["properties"]["listeners"]["items"]["properties"]["tls"]["description"]
    found = diags(tmp_path, "listeners:\n  - {name: a, port: 25, auth: false}\n")
    hint = next(d[3] for d in found if d[0] == "required")
    assert hint == f"add `tls:` ({desc.rstrip('.')})"


def test_absolute_path_below_the_working_directory_is_shown_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.yaml").write_text("name: x\nlisteners: [\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as info:
        load_profile(str(tmp_path / "p.yaml"))
    assert {d.file for d in info.value.diagnostics} == {"p.yaml"}


# --- Session 7: limits as numbers, messages of every size validator, generic wording.

def test_an_extends_chain_of_8_and_not_9(tmp_path: Path) -> None:
    (tmp_path / "p0.yaml").write_text("extends: roaming\nname: p0\n")
    for i in range(1, 10):
        (tmp_path / f"p{i}.yaml").write_text(f"name: p{i}\nextends: ./p{i - 1}.yaml\n")
    assert load_profile(str(tmp_path / "p7.yaml")).profile.name == "p7"  # 8 extends:
    with pytest.raises(ProfileError) as info:
        load_profile(str(tmp_path / "p8.yaml"))
    [d] = info.value.diagnostics
    # Reported at the extends: line of the file that went one too deep.
    assert (d.file.endswith("p0.yaml"), d.line, d.path, d.code) == (True, 1, ".extends",
                                                                    "extends")
    assert d.message == "extends chain deeper than 8 profiles"
    assert d.hint == "flatten the chain: a profile and its overrides suffice"


@pytest.mark.parametrize(("unknown", "shown"), [(200, 200), (201, 200)])
def test_200_diagnostics_then_one_line_for_the_rest(tmp_path: Path, unknown: int,
                                                    shown: int) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\n"
                    + "".join(f"zz{i}: 1\n" for i in range(unknown)))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    found = info.value.diagnostics
    assert [d.code for d in found[:shown]] == ["unknown-field"] * shown
    assert [d.line for d in found[:shown]] == list(range(3, 3 + shown))
    if unknown == shown:
        assert len(found) == shown
        return
    assert len(found) == shown + 1
    last = found[-1]
    assert (last.code, last.message, last.hint) == (
        "too-many-errors", "too many errors: stopped after the first 200",
        "fix these and validate again")


@pytest.mark.parametrize(("text", "code", "path", "message"), [
    ("description: '" + "x" * 80 + "'\n", "maxLength", ".description",
     "... has 80 characters, at most 79 allowed here"),
    ("restrictions:\n  client: ['']\n", "minLength", ".restrictions.client[0]",
     "'' has 0 characters, at least 1 allowed here"),
    ("listeners: []\n", "minItems", ".listeners", "0 items, at least 1 allowed here"),
    ("outputs:\n  oci: {name: a/b, tags: [" + ", ".join(f"t{i}" for i in range(65)) + "]}\n",
     "maxItems", ".outputs.oci.tags", "65 items, at most 64 allowed here"),
])
def test_size_errors_say_how_many_and_how_many_allowed(tmp_path: Path, text: str, code: str,
                                                       path: str, message: str) -> None:
    found = diags(tmp_path, text)
    hits = [d for d in found if d[0] == code and d[1] == path]
    assert hits, found
    assert hits[0][2].endswith(message), hits[0]
    assert hits[0][3], hits[0]  # the field's description says what the value is for


def test_a_field_without_a_description_gets_no_hint_line(tmp_path: Path) -> None:
    # inet_interfaces items have no description of their own: no hint, not a made-up one.
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\npostfix:\n  inet_interfaces: ['"
                    + "1" * 46 + "']\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    d = next(d for d in info.value.diagnostics if d.code == "maxLength")
    assert (d.path, d.line, d.hint) == (".postfix.inet_interfaces[0]", 4, "")
    assert "hint:" not in d.format()


def explained(schema: dict[str, Any], instance: object) -> list[tuple[str, str, str, str]]:
    """load's wording for the first error of a small schema: the profile schema does not
    use every construct yet, the wording must hold when it does."""
    import jsonschema

    from relaykit.profile.yamlsrc import Loc, Located

    error = next(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    located = Located(instance, {(): Loc("p.yaml", 1)}, "p.yaml")
    return [(d.code, d.path, d.message, d.hint) for d in load._explain(located, error)]


def test_an_unknown_field_where_no_field_is_allowed_says_remove_it() -> None:
    assert explained({"type": "object", "additionalProperties": False}, {"x": 1}) == [
        ("unknown-field", ".x", "unknown field 'x'", "remove it")]


def test_a_missing_field_without_description_points_at_the_schema() -> None:
    schema = {"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}}
    assert explained(schema, {}) == [
        ("required", ".", "missing required field 'x'",
         "add `x:` (see schema/profile.schema.json)")]


def test_other_validators_keep_jsonschema_s_message_and_the_description() -> None:
    assert explained({"const": 1, "description": "Always one."}, 2) == [
        ("const", ".", "1 was expected", "Always one.")]


def test_defaults_of_additional_properties_skip_the_declared_ones() -> None:
    schema = {"type": "object",
              "properties": {"a": {"type": "object", "properties": {"x": {"default": 1}}}},
              "additionalProperties": {"type": "object",
                                       "properties": {"y": {"default": 2}}}}
    data: dict[str, object] = {"a": {}, "b": {}}
    load.apply_defaults(schema, data)
    assert data == {"a": {"x": 1}, "b": {"y": 2}}


def test_the_default_suite_is_relaykit_debian_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaykit import debian

    other = next(s for s in debian.SUITES if s != debian.DEFAULT_SUITE)
    monkeypatch.setattr(debian, "DEFAULT_SUITE", other)
    load.load_schema.cache_clear()
    try:
        base: dict[str, object] = {}
        load.apply_defaults(load.load_schema(), {"base": base})
        assert base["suite"] == other
    finally:
        load.load_schema.cache_clear()


def test_the_public_names() -> None:
    # What the rest of relaykit imports from here (commands.py, stack/build.py), and Loc.
    names: dict[str, object] = {}
    exec("from relaykit.profile.load import *", names)
    assert set(names) - {"__builtins__"} == {"LoadedProfile", "Loc", "load_profile", "locate",
                                             "shipped_profiles"}


# Floods of separate findings (one unknown-field error above is one jsonschema error
# spelled out per key): 250 schema errors (one per map entry) and 250 policy errors (one
# per main_cf parameter) are each cut at 200, with the line that says so.
FLOODS = {
    "schema": ("restrictions:\n  maps:\n    m:\n      entries:\n",
               "        k{i}.example: [1]\n", "type"),
    "policy": ("postfix:\n  main_cf:\n", "    zz_{i}: 1\n", "parameter-not-allowed"),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
@pytest.mark.parametrize("count", [201, 250])
def test_a_flood_of_findings_is_cut_at_200_and_says_so(tmp_path: Path, kind: str,
                                                       count: int) -> None:
    head, line, code = FLOODS[kind]
    path = tmp_path / "p.yaml"
    path.write_text("extends: roaming\nname: t\n" + head
                    + "".join(line.format(i=i) for i in range(count)))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    found = info.value.diagnostics
    assert [d.code for d in found] == [code] * 200 + ["too-many-errors"]


def test_a_chain_of_exactly_the_size_limit_loads_and_one_byte_more_does_not(
        tmp_path: Path) -> None:
    """The loader's size limit holds for a profile and its extends: chain together,
    at the byte."""
    from relaykit.paths import profiles_dir
    from relaykit.profile import yamlsrc

    roaming = (profiles_dir() / "roaming.yaml").stat().st_size  # the chain's root
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nname: t\n")
    parent = tmp_path / "parent.yaml"
    head = "extends: roaming\n# "
    parent.write_text(head + "x" * (yamlsrc.MAX_BYTES - roaming - child.stat().st_size
                                    - len(head) - 1) + "\n")
    assert roaming + parent.stat().st_size + child.stat().st_size == yamlsrc.MAX_BYTES
    assert load_profile(str(child)).profile.name == "t"
    parent.write_text(parent.read_text() + "\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(child))
    [d] = info.value.diagnostics
    # Found when the last file of the chain, the shipped root, is added.
    assert (d.file.endswith("roaming.yaml"), d.line, d.code) == (True, 1, "yaml")
    assert d.message == ("this profile and the profiles extending it are larger than "
                         f"{yamlsrc.MAX_BYTES} bytes together")
