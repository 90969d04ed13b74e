"""A small AST mutator: every mutant of a module, with an id that survives unrelated edits.

Operators are the faults that would turn a relay-safety check off: a comparison or a
condition negated, `and`/`or` and `any`/`all` swapped, a statement, decorator or table
entry dropped, a constant changed, a function returning early or returning None.

Not mutated, on purpose: docstrings, annotations (never evaluated under
`from __future__ import annotations`), f-strings and the text handed to the message
builders in MESSAGE_CALLS (wording is not relay safety; the codes and paths are
checked through other constants), class decorators (`@dataclass(frozen=True)`) and
`assert x is not None` / `assert isinstance(...)` lines that only narrow types for mypy.

A mutant's id is `file:function:operator:digest`, the digest taken over the source
snippet before and after and its rank among identical snippets in that function, so
line moves elsewhere in the file do not change it (equivalent.toml is keyed by it).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

# Calls whose string arguments are human-readable messages, not behaviour.
MESSAGE_CALLS = frozenset({
    "error", "warning", "Finding", "Diagnostic", "_diag", "die", "RelaykitError",
    "ProfileError", "YamlSyntaxError", "ValueError", "TypeError", "KeyError",
    "print", "log",
})
MESSAGE_KEYWORDS = frozenset({"hint", "message", "help"})
# Decorators whose removal changes speed or typing, not results.
NEUTRAL_DECORATORS = frozenset({"cache", "lru_cache", "staticmethod", "classmethod",
                                "property", "cached_property", "overload", "wraps"})
# Subscripts that are type expressions (`dict[str, Any]`, `Callable[["Ctx"], ...]`).
TYPE_GENERICS = frozenset({"dict", "list", "tuple", "set", "frozenset", "type", "Callable",
                           "Iterator", "Iterable", "Generator", "Mapping", "Sequence",
                           "Optional", "Union", "ClassVar", "Protocol"})
BUILTIN_SWAPS = {"any": "all", "all": "any", "min": "max", "max": "min"}


class Operator(StrEnum):
    NEGATE_COMPARE = "negate-compare"
    BOUNDARY = "boundary"
    AND_OR = "and-or"
    DROP_NOT = "drop-not"
    NEGATE_CONDITION = "negate-condition"
    FLIP_BOOL = "flip-bool"
    BUILTIN_SWAP = "builtin-swap"
    NUMBER = "number"
    STRING = "string"
    ARITH = "arith"
    DROP_STATEMENT = "drop-statement"
    RETURN_NONE = "return-none"
    EARLY_RETURN = "early-return"
    DROP_DECORATOR = "drop-decorator"
    DROP_ENTRY = "drop-entry"
    DROP_WORD = "drop-word"
    BREAK_CONTINUE = "break-continue"


NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt,
    ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
BOUNDARY: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
}
ARITH: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}
DROPPABLE = (ast.Expr, ast.If, ast.For, ast.While, ast.Raise, ast.Assert, ast.AugAssign,
             ast.Continue, ast.Break, ast.With, ast.Try)
BODY_FIELDS = ("body", "orelse", "finalbody")

Path_ = tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class Context:
    qualname: str = "<module>"
    in_function: bool = False  # False: runs at import time (module, class body, defaults)
    in_message: bool = False


@dataclass(frozen=True)
class Mutant:
    file: str  # repository-relative path, e.g. src/relaykit/profile/policy.py
    module: str  # dotted module name
    function: str  # qualified name of the enclosing function, or <module>
    operator: Operator
    line: int
    end_line: int
    before: str
    after: str
    import_time: bool  # the mutated code runs when the module is imported
    occurrence: int = 0
    target: Path_ = field(default=(), compare=False, repr=False)  # where `new` goes
    new: ast.AST | None = field(default=None, compare=False, repr=False)

    @property
    def digest(self) -> str:
        text = f"{self.before}\0{self.after}\0{self.occurrence}"
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.function}:{self.operator}:{self.digest}"

    def describe(self) -> str:
        return f"{self.file}:{self.line} {self.function} [{self.operator}] " \
               f"{_short(self.before)} -> {_short(self.after)}"


def _short(text: str, width: int = 100) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 3] + "..."


@dataclass(frozen=True)
class _Change:
    operator: Operator
    target: Path_  # where the new node goes
    new: ast.AST
    anchor: ast.AST  # the original node, for lines and the "before" snippet
    before: str | None = None
    after: str | None = None


def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_type_narrowing(stmt: ast.Assert) -> bool:
    test = stmt.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        right = test.comparators[0]
        return (isinstance(test.ops[0], ast.IsNot) and isinstance(right, ast.Constant)
                and right.value is None)
    return isinstance(test, ast.Call) and _call_name(test) == "isinstance"


def _skipped_if(node: ast.If) -> bool:
    """`if TYPE_CHECKING:` and `if __name__ == "__main__":` blocks."""
    src = ast.unparse(node.test)
    return src in ("TYPE_CHECKING", "__name__ == '__main__'")


def _walk(node: ast.AST, path: Path_, ctx: Context) -> Iterator[tuple[ast.AST, Path_, Context]]:
    yield node, path, ctx
    for fname, value in ast.iter_fields(node):
        child = _child_context(node, fname, ctx)
        if child is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, ast.AST):
                    continue
                if fname in BODY_FIELDS and i == 0 and isinstance(item, ast.stmt) and \
                        _is_docstring(item) and isinstance(
                        node, ast.Module | ast.ClassDef | ast.FunctionDef):
                    continue
                if isinstance(item, ast.If) and _skipped_if(item):
                    continue
                if isinstance(item, ast.Assert) and _is_type_narrowing(item):
                    continue
                if isinstance(item, ast.keyword) and item.arg in MESSAGE_KEYWORDS:
                    continue
                yield from _walk(item, (*path, (fname, i)), child)
        elif isinstance(value, ast.AST):
            yield from _walk(value, (*path, (fname, None)), child)


def _is_cached(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.id if isinstance(target, ast.Name) else (
            target.attr if isinstance(target, ast.Attribute) else "")
        if name in ("cache", "lru_cache"):
            return True
    return False


def _child_context(node: ast.AST, field: str, ctx: Context) -> Context | None:
    """The context of a child field, or None to leave that subtree alone."""
    if field in ("annotation", "returns", "type_comment"):
        return None
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Assert) and field == "msg"):
        return None
    if isinstance(node, ast.Subscript) and field == "slice" and isinstance(
            node.value, ast.Name | ast.Attribute) and (
            node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            ) in TYPE_GENERICS:
        return None
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and field == "body":
        name = node.name if ctx.qualname == "<module>" else f"{ctx.qualname}.{node.name}"
        # A cached function runs once for the whole test session: line coverage names
        # only its first caller, so it is selected and run like import-time code.
        return Context(name, not _is_cached(node), False)
    if isinstance(node, ast.ClassDef):
        if field == "decorator_list":
            return None
        if field == "body":
            name = node.name if ctx.qualname == "<module>" else f"{ctx.qualname}.{node.name}"
            return replace(ctx, qualname=name)
    if isinstance(node, ast.Call) and field in ("args", "keywords") and \
            _call_name(node) in MESSAGE_CALLS:
        return replace(ctx, in_message=True)
    return ctx


def _changes(node: ast.AST, path: Path_, ctx: Context) -> Iterator[_Change]:
    """Every mutation of this one node."""
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            for operator, table in ((Operator.NEGATE_COMPARE, NEGATED),
                                    (Operator.BOUNDARY, BOUNDARY)):
                swap = table.get(type(op))
                if swap is not None:
                    new = copy.deepcopy(node)
                    new.ops[k] = swap()
                    yield _Change(operator, path, new, node)
    elif isinstance(node, ast.BoolOp):
        swapped = copy.deepcopy(node)
        swapped.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield _Change(Operator.AND_OR, path, swapped, node)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield _Change(Operator.DROP_NOT, path, copy.deepcopy(node.operand), node)
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
        arith = copy.deepcopy(node)
        arith.op = ARITH[type(node.op)]()
        yield _Change(Operator.ARITH, path, arith, node)
    elif isinstance(node, ast.Constant):
        yield from _constant_changes(node, path, ctx)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id in BUILTIN_SWAPS:
        call = copy.deepcopy(node)
        call.func = ast.Name(BUILTIN_SWAPS[node.func.id], ast.Load())
        yield _Change(Operator.BUILTIN_SWAP, path, call, node)
    elif isinstance(node, ast.Break | ast.Continue):
        other = ast.Continue() if isinstance(node, ast.Break) else ast.Break()
        yield _Change(Operator.BREAK_CONTINUE, path, other, node)
    if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
        yield from _negate(node.test, (*path, ("test", None)))
    if isinstance(node, ast.comprehension):
        for i, cond in enumerate(node.ifs):
            yield from _negate(cond, (*path, ("ifs", i)))
    if isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield _Change(Operator.RETURN_NONE, (*path, ("value", None)), ast.Constant(None),
                      node.value)
    if isinstance(node, DROPPABLE) and path and path[-1][0] in BODY_FIELDS:
        yield _Change(Operator.DROP_STATEMENT, path, ast.Pass(), node, after="pass")
    if isinstance(node, ast.FunctionDef):
        yield from _function_changes(node, path)
    if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
        yield from _drop_entries(node, path, ctx)


def _negate(test: ast.expr, path: Path_) -> Iterator[_Change]:
    # Comparisons and `not x` have their own operators; negating them again is a duplicate.
    if isinstance(test, ast.Compare) or (isinstance(test, ast.UnaryOp)
                                         and isinstance(test.op, ast.Not)):
        return
    yield _Change(Operator.NEGATE_CONDITION, path,
                  ast.UnaryOp(ast.Not(), copy.deepcopy(test)), test)


def _constant_changes(node: ast.Constant, path: Path_, ctx: Context) -> Iterator[_Change]:
    value = node.value
    if isinstance(value, bool):
        yield _Change(Operator.FLIP_BOOL, path, ast.Constant(not value), node)
    elif isinstance(value, int):
        yield _Change(Operator.NUMBER, path, ast.Constant(value + 1), node)
    elif isinstance(value, str) and not ctx.in_message:
        yield _Change(Operator.STRING, path, ast.Constant("" if value else "MUTANT"), node)
        yield from _drop_words(node, value, path)


def _drop_words(node: ast.Constant, value: str, path: Path_) -> Iterator[_Change]:
    """A table written as one string of names ("permit reject ...".split()): each name."""
    words = value.split()
    if len(words) < 2 or not all(re.fullmatch(r"[A-Za-z_][\w.-]*", w) for w in words) or \
            not any("_" in w for w in words):
        return  # prose, not a table of names
    for i, word in enumerate(words):
        rest = " ".join(words[:i] + words[i + 1:])
        yield _Change(Operator.DROP_WORD, path, ast.Constant(rest), node, before=word,
                      after="<word removed>")


def _function_changes(node: ast.FunctionDef, path: Path_) -> Iterator[_Change]:
    body = node.body
    start = 1 if _is_docstring(body[0]) else 0
    rest = body[start:]
    trivial = not rest or (len(rest) == 1 and isinstance(rest[0], ast.Pass | ast.Return))
    if not trivial:
        new = copy.deepcopy(node)
        new.body.insert(start, ast.Return(None))
        # Anchored on the body: the def line itself runs at import time.
        yield _Change(Operator.EARLY_RETURN, path, new, body[start],
                      before=f"def {node.name}", after=f"def {node.name}: return")
    for i, deco in enumerate(node.decorator_list):
        name = deco.id if isinstance(deco, ast.Name) else (
            deco.attr if isinstance(deco, ast.Attribute) else "")
        if name and name not in NEUTRAL_DECORATORS:
            new = copy.deepcopy(node)
            del new.decorator_list[i]
            yield _Change(Operator.DROP_DECORATOR, path, new, deco,
                          before=f"@{name} def {node.name}", after=f"def {node.name}")


def _is_table(node: ast.List | ast.Tuple | ast.Set | ast.Dict, ctx: Context) -> bool:
    """Collections worth dropping entries from: data, not an unpacked (a, b) pair."""
    if isinstance(node, ast.Set | ast.Dict):
        return True
    if getattr(node, "ctx", None) is not None and not isinstance(node.ctx, ast.Load):
        return False
    if not ctx.in_function:
        return True
    return len(node.elts) >= 2 and all(
        isinstance(e, ast.Constant | ast.Tuple | ast.List) for e in node.elts)


def _drop_entries(node: ast.List | ast.Tuple | ast.Set | ast.Dict, path: Path_,
                  ctx: Context) -> Iterator[_Change]:
    if ctx.in_message or not _is_table(node, ctx):
        return
    if path and path[-1][0] == "elts":
        return  # a row of a table: its cells are mutated, a shorter row only fails to unpack
    if isinstance(node, ast.Dict):
        for i, key in enumerate(node.keys):
            new_d = copy.deepcopy(node)
            del new_d.keys[i]
            del new_d.values[i]
            shown = f"{ast.unparse(key)}: {ast.unparse(node.values[i])}" if key else \
                f"**{ast.unparse(node.values[i])}"
            yield _Change(Operator.DROP_ENTRY, path, new_d, node.values[i] if key is None
                          else key, before=shown, after="<entry removed>")
        return
    for i, elt in enumerate(node.elts):
        new = copy.deepcopy(node)
        del new.elts[i]
        if isinstance(new, ast.Set) and not new.elts:
            continue  # `{}` would be a dict: a different fault
        yield _Change(Operator.DROP_ENTRY, path, new, elt, after="<entry removed>")


def _node_at(tree: ast.AST, target: Path_) -> ast.AST:
    node: ast.AST = tree
    for fname, index in target:
        value = getattr(node, fname)
        node = value[index] if index is not None else value
    return node


def _put(tree: ast.AST, target: Path_, new: ast.AST) -> ast.AST:
    """Place new at target; returns what was there."""
    parent = _node_at(tree, target[:-1])
    fname, index = target[-1]
    if index is None:
        old: ast.AST = getattr(parent, fname)
        setattr(parent, fname, new)
    else:
        old = getattr(parent, fname)[index]
        getattr(parent, fname)[index] = new
    return old


def mutated_source(tree: ast.Module, mutant: Mutant) -> str:
    """The module's source with this mutant applied (tree is left as it was)."""
    assert mutant.new is not None
    old = _put(tree, mutant.target, mutant.new)
    try:
        return ast.unparse(ast.fix_missing_locations(tree))
    finally:
        _put(tree, mutant.target, old)


def module_name(file: Path, src_root: Path) -> str:
    parts = list(file.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def mutants(file: Path, repo: Path, src_root: Path) -> list[Mutant]:
    """All distinct mutants of one module, in source order."""
    source = file.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(file))
    rel = file.relative_to(repo).as_posix()
    module = module_name(file, src_root)
    seen: set[tuple[Path_, str]] = set()
    ranks: dict[tuple[str, Operator, str, str, str], int] = {}
    out: list[Mutant] = []
    for node, path, ctx in _walk(tree, (), Context()):
        for ch in _changes(node, path, ctx):
            dump = ast.dump(ch.new)
            if (ch.target, dump) in seen or dump == ast.dump(_node_at(tree, ch.target)):
                continue  # a duplicate of an earlier mutant, or no change at all
            seen.add((ch.target, dump))
            before = ch.before if ch.before is not None else (
                ast.get_source_segment(source, ch.anchor) or ast.unparse(ch.anchor))
            after = ch.after if ch.after is not None else ast.unparse(ch.new)
            key = (ctx.qualname, ch.operator, before, after, getattr(node, "name", ""))
            rank = ranks.get(key, 0)
            ranks[key] = rank + 1
            line = getattr(ch.anchor, "lineno", 1)
            end = getattr(ch.anchor, "end_lineno", None) or line
            function = ctx.qualname
            if ch.operator is Operator.EARLY_RETURN and isinstance(node, ast.FunctionDef):
                # The mutation is inside this function: it is the one whose code changes.
                function = node.name if function == "<module>" else f"{function}.{node.name}"
                end = node.end_lineno or end
            out.append(Mutant(rel, module, function, ch.operator, line, end, before, after,
                              import_time=not ctx.in_function
                              and ch.operator is not Operator.EARLY_RETURN,
                              occurrence=rank, target=ch.target, new=ch.new))
    return out
