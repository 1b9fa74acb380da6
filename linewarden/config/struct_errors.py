"""A msgspec ValidationError of a Struct config model as (key location, what is wrong in plain words).

msgspec says "Expected `int` <= 65535 - at `$.targets[3].port`"; the loader reports `targets[3].port` and
"must be <= 65535". A check in `__post_init__` that raised FieldProblem adds its field to the Struct's path.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from linewarden.config.base import FieldProblem

Loc = tuple[int | str, ...]

_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PART = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\d+)\]|\[\.\.\.\]")
_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<key>[^`]*)`$")
_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}
_WORDINGS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"^Expected `([\w |]+)`, got `(\w+)`$"), lambda m: f"expected {_named(m[1])}, got {_named(m[2])}"),
    (re.compile(r"^Expected `array` of length >= (\d+)$"), lambda m: f"needs at least {_count(m[1], 'item')}"),
    (re.compile(r"^Expected `array` of length <= (\d+)$"), lambda m: f"takes at most {_count(m[1], 'item')}"),
    (re.compile(r"^Expected `str` of length >= (\d+)$"), lambda m: f"needs at least {_count(m[1], 'character')}"),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), lambda m: f"takes at most {_count(m[1], 'character')}"),
    (re.compile(r"^Expected `str` matching regex '(.*)'$", re.DOTALL), lambda m: f"should match pattern '{m[1]}'"),
    (re.compile(r"^Expected `(?:int|float)` (>=|<=|>|<) (\S+)$"), lambda m: f"must be {m[1]} {m[2]}"),
]
_INVALID = re.compile(r"^Invalid (?:enum )?value (?P<value>.+)$", re.DOTALL)


def _named(kinds: str) -> str:
    """`str | object` as "a string or a table"."""
    return " or ".join(_TYPE_NAMES.get(kind, f"`{kind}`") for kind in kinds.split(" | "))


def _count(n: str, what: str) -> str:
    return f"{n} {what}{'' if n == '1' else 's'}"


def parts(path: str) -> Loc:
    """`.targets[3].port` as ("targets", 3, "port"); a dict key msgspec does not name (`[...]`) is dropped."""
    found: list[int | str] = []
    for m in _PART.finditer(path):
        if m["key"] is not None:
            found.append(m["key"])
        elif m["index"] is not None:
            found.append(int(m["index"]))
    return tuple(found)


def struct_problem(exc: msgspec.ValidationError, model: Any = None, data: Any = None) -> tuple[Loc, str]:
    """(key location, what is wrong) of a msgspec ValidationError; with the model and its input, an invalid
    choice lists the valid ones."""
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any text
    loc = parts(m["path"] or "")
    problem = m["problem"]
    cause = exc.__cause__
    if isinstance(cause, FieldProblem):
        return loc + parts(f".{cause.key}"), problem
    field = _FIELD.match(problem)
    if field is not None:
        unknown = field["what"] == "contains unknown"
        what = (
            "unknown key (check its spelling; see `linewarden config schema`)" if unknown else "required key is missing"
        )
        return (*loc, field["key"]), what
    invalid = _INVALID.match(problem)
    if invalid is not None:
        choices = _choices(model, loc, data) if model is not None else None
        shown = f" (one of {', '.join(repr(c) for c in choices)})" if choices else ""
        return loc, f"invalid value {invalid['value']}{shown}"
    for pattern, wording in _WORDINGS:
        w = pattern.match(problem)
        if w is not None:
            return loc, wording(w)
    return loc, problem


def _choices(model: Any, loc: Loc, data: Any) -> list[Any] | None:
    """The values a Literal, enum or tagged union at `loc` accepts; None when the walk does not get there."""
    kind = mi.type_info(model)
    node = data
    for i, part in enumerate(loc):
        kind = _member(kind, node)
        if isinstance(part, int) and isinstance(kind, mi.ListType):
            kind = kind.item_type
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(part, str) and isinstance(kind, mi.StructType):
            if kind.tag_field == part and i == len(loc) - 1:
                return None
            field = next((f for f in kind.fields if f.encode_name == part), None)
            if field is None:
                return None
            kind = field.type
            node = node.get(part) if isinstance(node, dict) else None
        elif isinstance(part, str) and isinstance(kind, mi.UnionType):
            structs = [t for t in kind.types if isinstance(t, mi.StructType)]
            if structs and structs[0].tag_field == part:
                return [t.tag for t in structs]
            return None
        else:
            return None
    kind = _member(kind, node)
    if isinstance(kind, mi.LiteralType):
        return list(kind.values)
    if isinstance(kind, mi.EnumType):
        return [member.value for member in kind.cls]
    return None


def _member(kind: mi.Type, node: Any) -> mi.Type:
    """Through an optional value or a tagged union, to the type that describes `node`."""
    while isinstance(kind, mi.Metadata):
        kind = kind.type
    if not isinstance(kind, mi.UnionType):
        return kind
    members = [t for t in kind.types if not isinstance(t, mi.NoneType)]
    structs = [t for t in members if isinstance(t, mi.StructType) and t.tag_field is not None]
    if structs and isinstance(node, dict):
        tag = node.get(structs[0].tag_field)
        chosen = next((t for t in structs if t.tag == tag), None)
        return chosen if chosen is not None else kind
    return members[0] if len(members) == 1 else kind
