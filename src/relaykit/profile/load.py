"""Load a profile: YAML with locations -> extends: merged -> defaults -> schema -> policy.

Every problem found is collected with its FILE:LINE and path; only then do we fail
(ProfileError, exit 2).  The result is a frozen model plus the warnings to print.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema


from relaykit import debian
from relaykit.errors import Diagnostic, Level, ProfileError, RelaykitError
from relaykit.paths import profiles_dir, schema_file
from relaykit.profile import fastcheck, policy, yamlsrc
from relaykit.profile.model import Profile, build_profile
from relaykit.profile.yamlsrc import Loc, Located, PathKey, format_path

MAX_EXTENDS_DEPTH = 8


@dataclass(frozen=True)
class LoadedProfile:
    profile: Profile
    resolved: dict[str, Any]  # after extends: and defaults, for `invoke show`
    warnings: tuple[Diagnostic, ...]


@cache
def load_schema() -> dict[str, Any]:
    with schema_file().open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    # Supported suites have one home (relaykit.debian); the schema file leaves them out.
    suite = schema["properties"]["base"]["properties"]["suite"]
    suite["enum"] = list(debian.SUITES)
    suite["default"] = debian.DEFAULT_SUITE
    return schema


def shipped_profiles() -> list[Path]:
    return sorted(profiles_dir().glob("*.yaml"))


def locate(ref: str, relative_to: Path | None = None) -> Path:
    """A shipped profile name, or a path (relative to the including file, else cwd)."""
    if not ref:
        raise RelaykitError("no profile given", hint="--profile roaming, or --profile FILE.yaml")
    if len(ref) > 4096:
        raise RelaykitError("profile path longer than 4096 characters",
                            hint="give a path to a .yaml file")
    looks_like_path = "/" in ref or ref.endswith((".yaml", ".yml"))
    if not looks_like_path:
        shipped = profiles_dir() / f"{ref}.yaml"
        if shipped.is_file():
            return shipped
        names = ", ".join(p.stem for p in shipped_profiles())
        raise RelaykitError(f"no shipped profile named {ref!r}",
                            hint=f"shipped profiles: {names}; or give a path to a .yaml file")
    path = Path(ref)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to.parent / path
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a loop of links...
        raise RelaykitError(f"cannot use {ref[:80]!r} as a profile path: {exc}",
                            hint="give a shorter path to a .yaml file") from None
    if not is_file:
        hint = "check the path, or use a shipped profile name"
        if "/" not in ref and (profiles_dir() / ref).is_file():
            hint = f"a shipped profile is named without .yaml: {Path(ref).stem}"
        raise RelaykitError(f"profile file not found: {path}", hint=hint)
    return path


def load_profile(ref: str, *, strict: bool = False) -> LoadedProfile:
    located = resolve_extends(locate(ref), chain=())
    diagnostics = check(located)
    errors = [d for d in diagnostics if d.level is Level.ERROR]
    warnings = tuple(d for d in diagnostics if d.level is Level.WARNING)
    if errors or (strict and warnings):
        raise ProfileError(diagnostics, strict=strict)
    profile = build_profile(located.data, located.file)
    return LoadedProfile(profile, located.data, warnings)


def check(located: Located) -> list[Diagnostic]:
    """Defaults, schema, then policy: all findings at once."""
    apply_defaults(load_schema(), located.data)
    found = schema_diagnostics(located)
    # Policy judges only schema-valid documents, so a check never meets data it cannot
    # read, and one that fails is a bug that crashes loudly instead of passing.
    if not found:
        # Errors first: a flood of warnings must not push the refusal out of the cap.
        findings = sorted(policy.run(located.data), key=lambda f: f.level is Level.WARNING)
        found = _capped(located, [_pin(located, f) for f in findings[:MAX_DIAGNOSTICS + 1]])
    return sorted(found, key=lambda d: (d.code == "too-many-errors", d.level is Level.WARNING,
                                        d.file, d.line, d.path))


# --- extends: --------------------------------------------------------------------------

def resolve_extends(path: Path, chain: tuple[Path, ...]) -> Located:
    display = _display(path)
    _within_size_budget(path, chain, display)
    try:
        doc = yamlsrc.load(path, display)
    except yamlsrc.YamlSyntaxError as exc:
        raise ProfileError([_diag(exc.file, exc.line, (), exc.message,
                                  "fix the YAML syntax at that line", "yaml")]) from None
    if not isinstance(doc.data, dict):
        raise ProfileError([_diag(display, 1, (), "a profile must be a YAML mapping",
                                  "start the file with `name: ...`", "type")])
    parent_ref = doc.data.pop("extends", None)
    if parent_ref is None:
        return doc
    return _merge_parent(doc, parent_ref, path, chain)


def _within_size_budget(path: Path, chain: tuple[Path, ...], display: str) -> None:
    """A profile and everything it extends share the loader's size limit: eight 1 MB
    files must not add up to what one file may not be."""
    try:
        total = sum(p.stat().st_size for p in (*chain, path))
    except OSError:
        return  # unreadable: yamlsrc.load says so, with the file's name
    if total > yamlsrc.MAX_BYTES:
        raise ProfileError([_diag(display, 1, (), "this profile and the profiles extending "
                                  f"it are larger than {yamlsrc.MAX_BYTES} bytes together",
                                  "a profile and its extends: chain hold a few screens of "
                                  "YAML; move big maps into one file", "yaml")])


def _merge_parent(doc: Located, ref: Any, path: Path, chain: tuple[Path, ...]) -> Located:
    loc = doc.locs[("extends",)]
    if not isinstance(ref, str) or not ref:
        raise ProfileError([_diag(loc.file, loc.line, ("extends",),
                                  "extends must be a profile name or path", "", "type")])
    try:
        parent_path = locate(ref, relative_to=path)
    except RelaykitError as exc:
        raise ProfileError([_diag(loc.file, loc.line, ("extends",), exc.message,
                                  exc.hint, "extends")]) from None
    resolved = parent_path.resolve()
    if resolved in chain or resolved == path.resolve():
        raise ProfileError([_diag(loc.file, loc.line, ("extends",),
                                  f"extends cycle through {_display(parent_path)}",
                                  "a profile cannot extend itself, directly or not",
                                  "extends")])
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ProfileError([_diag(loc.file, loc.line, ("extends",),
                                  f"extends chain deeper than {MAX_EXTENDS_DEPTH} profiles",
                                  "flatten the chain: a profile and its overrides suffice",
                                  "extends")])
    parent = resolve_extends(parent_path, (*chain, path.resolve()))
    merged = _merge_owned(parent.data, doc.data)
    locs = {**parent.locs, **{k: v for k, v in doc.locs.items() if k != ("extends",)}}
    return Located(merged, locs, doc.file)


def _merge_owned(base: Any, override: Any) -> Any:
    """A profile over the one it extends: mappings merge key by key, anything else
    (lists included) is replaced.  No copies: both documents were just loaded and belong
    to nobody else (big access maps are benchmarked: copying them costs a tenth of a
    second)."""
    if isinstance(base, dict) and isinstance(override, dict):
        for key, value in override.items():
            base[key] = _merge_owned(base[key], value) if key in base else value
        return base
    return override


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- defaults --------------------------------------------------------------------------

def apply_defaults(schema: dict[str, Any], data: Any) -> None:
    """Fill in `default` values from the schema, recursively, where the data is well-typed."""
    if not isinstance(data, dict) or schema.get("type") != "object":
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            _defaults_into(sub, data[key])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in data.items():
            if key not in schema.get("properties", {}):
                _defaults_into(extra, value)


def _defaults_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        apply_defaults(schema, value)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


# --- schema ----------------------------------------------------------------------------

def schema_diagnostics(located: Located) -> list[Diagnostic]:
    if fastcheck.is_valid(load_schema(), located.data):
        return []  # sure it is valid: no need to pay for jsonschema's import
    validator = _validator()
    found: list[Diagnostic] = []
    for error in validator.iter_errors(located.data):
        if len(found) > MAX_DIAGNOSTICS:
            break  # the generator stops: the errors not reported are never even built
        found.extend(_explain(located, error))
    return _capped(located, found)


# A profile with 249,000 empty listeners gave a million schema errors (> 20 s, 377 MB):
# the first ones say what is wrong, the rest would bury them.
MAX_DIAGNOSTICS = 200


def _capped(located: Located, found: list[Diagnostic]) -> list[Diagnostic]:
    if len(found) <= MAX_DIAGNOSTICS:
        return found
    return [*found[:MAX_DIAGNOSTICS],
            _at(located, (), f"too many errors: stopped after the first {MAX_DIAGNOSTICS}",
                "fix these and validate again", "too-many-errors")]


def _validator() -> Any:
    import jsonschema

    base = jsonschema.Draft202012Validator
    # JSON Schema calls 2525.0 an integer; Postfix does not ("bad numerical configuration").
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _c, x: isinstance(x, int) and not isinstance(x, bool))
    strict = jsonschema.validators.extend(base, type_checker=checker)  # type: ignore[no-untyped-call]
    return strict(load_schema())


def _explain(located: Located, error: jsonschema.ValidationError) -> list[Diagnostic]:
    path: PathKey = tuple(error.absolute_path)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return [_unknown_key(located, path, key, error.schema)
                for key in error.instance if key not in schema.get("properties", {})]
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        return [_at(located, path, f"missing required field {missing!r}",
                    f"add `{missing}:` ({_describe(schema, missing)})", "required")]
    message, hint = _message(error, schema)
    return [_at(located, path, message, hint, str(error.validator))]


def _unknown_key(located: Located, path: PathKey, key: str, schema: Any) -> Diagnostic:
    allowed = sorted(schema.get("properties", {}))
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif allowed:
        hint = "allowed here: " + ", ".join(allowed)
    else:
        hint = "remove it"
    return _at(located, (*path, key), f"unknown field {key!r}", hint, "unknown-field")


def _message(error: jsonschema.ValidationError, sch: dict[str, Any]) -> tuple[str, str]:
    v, inst = error.validator, error.instance
    desc = str(sch.get("description", ""))
    if v == "type":
        want = sch["type"] if isinstance(sch["type"], str) else " or ".join(sch["type"])
        hint = desc
        if isinstance(inst, (datetime.date, bytes)):
            hint = "YAML read this as a date or binary: quote it, e.g. \"2026-11-27\""
        return f"expected {want}, got {_type_name(inst)} {_short(inst)}", hint
    if v == "enum":
        return (f"{_short(inst)} is not allowed",
                "use one of: " + ", ".join(json.dumps(x) for x in sch["enum"]))
    if v == "pattern":
        return f"{_short(inst)} is not a valid value here", desc
    size = len(inst) if isinstance(inst, str | list) else 0
    if v in ("maxLength", "minLength"):
        return (f"{_short(inst)} has {size} characters, "
                f"{'at most' if v == 'maxLength' else 'at least'} {error.validator_value} "
                "allowed here"), desc
    if v in ("maxItems", "minItems"):
        return (f"{size} items, {'at most' if v == 'maxItems' else 'at least'} "
                f"{error.validator_value} allowed here"), desc
    return str(error.message), desc  # minimum, maximum, uniqueItems: jsonschema says it well


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
             dict: "mapping", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _describe(schema: Any, key: str) -> str:
    prop = schema.get("properties", {}).get(key, {})
    return str(prop.get("description", "see schema/profile.schema.json")).rstrip(".")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- helpers ---------------------------------------------------------------------------

def _at(located: Located, path: PathKey, message: str, hint: str, code: str,
        level: Level = Level.ERROR) -> Diagnostic:
    loc = located.loc(path)
    return Diagnostic(level, loc.file, loc.line, format_path(path), message, hint, code)


def _pin(located: Located, finding: policy.Finding) -> Diagnostic:
    return _at(located, finding.path, finding.message, finding.hint, finding.code,
               finding.level)


def _diag(file: str, line: int, path: PathKey, message: str, hint: str,
          code: str) -> Diagnostic:
    return Diagnostic(Level.ERROR, file, line, format_path(path), message, hint, code)


__all__ = ["LoadedProfile", "Loc", "load_profile", "locate", "shipped_profiles"]
