"""``?filter=`` as Consul applies it: parse, check the selectors against the listed
type, then keep the items the expression matches.

Semantics are go-bexpr v0.1.2's (the version Consul builds with):

* selectors name struct fields; maps take any key (``Node.Meta.rack``, ``Meta["a-b"]``);
* each field type supports a fixed set of operators (``Service.Port`` only ``==``/``!=``,
  ``Service.Tags`` only ``in``/``not in``/``is empty``/``is not empty``, strings also
  ``matches`` and substring ``in``), and values are coerced to the field's type up front;
* a selector that runs through a list (``Checks.Status``) matches when *any* element does;
* a map key that is absent makes ``==``, ``in`` and ``is not empty`` false and the
  negated operators true.

A bad expression is refused as Consul refuses it: a 500 whose body starts with
``Failed to create boolean expression evaluator:`` (the error is raised on the server
side of Consul's RPC, so its HTTP layer cannot tell it from any other failure; see
hashicorp/consul#7338).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rotator.sandbox.consul.bexpr import (
    EQUAL,
    IN,
    IS_EMPTY,
    IS_NOT_EMPTY,
    MATCHES,
    NOT_EQUAL,
    NOT_IN,
    NOT_MATCHES,
    And,
    Expression,
    Match,
    Not,
    Or,
    ParseError,
    parse,
)
from rotator.sandbox.consul.model import ConsulError

_STRING_OPS = (EQUAL, NOT_EQUAL, IN, NOT_IN, MATCHES, NOT_MATCHES)
_SCALAR_OPS = (EQUAL, NOT_EQUAL)
_LIST_OPS = (IN, NOT_IN, IS_EMPTY, IS_NOT_EMPTY)
_MAP_OPS = (IS_EMPTY, IS_NOT_EMPTY, IN, NOT_IN)
_EMPTINESS = (IS_EMPTY, IS_NOT_EMPTY)


@dataclass(frozen=True)
class Field:
    """One Go type as go-bexpr sees it.

    ``kind`` is ``str``, ``int``, ``uint``, ``float``, ``bool`` (primitives), ``list``,
    ``map`` or ``struct``. Lists and maps describe their element in ``element``;
    structs list their fields in ``fields``.
    """

    kind: str
    element: Field | None = None
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def operators(self) -> tuple[str, ...]:
        if self.kind == "str":
            return _STRING_OPS
        if self.kind in ("int", "uint", "float", "bool"):
            return _SCALAR_OPS
        if self.kind == "list":
            assert self.element is not None
            return _LIST_OPS if self.element.is_primitive else _EMPTINESS
        if self.kind == "map":
            return _MAP_OPS
        return ()

    @property
    def is_primitive(self) -> bool:
        return self.kind in ("str", "int", "uint", "float", "bool")

    def child(self, name: str) -> Field | None:
        """The field a selector step leads to (lists are transparent, as in go-bexpr)."""
        if self.kind == "struct":
            return self.fields.get(name)
        if self.kind == "map":
            return self.element
        if self.kind == "list" and self.element is not None and not self.element.is_primitive:
            return self.element.child(name)
        return None

    def zero(self) -> Any:
        """The Go zero value, for fields a JSON answer leaves out."""
        return {"str": "", "int": 0, "uint": 0, "float": 0.0, "bool": False,
                "list": [], "map": {}, "struct": {}}[self.kind]


STR, INT, UINT, FLOAT, BOOL = (Field("str"), Field("int"), Field("uint"), Field("float"),
                               Field("bool"))


def list_of(element: Field) -> Field:
    return Field("list", element=element)


def map_of(element: Field) -> Field:
    return Field("map", element=element)


def struct(**fields: Field) -> Field:
    return Field("struct", fields=fields)


@dataclass
class _Check:
    """A match expression checked against its field: operator allowed, value coerced."""

    expr: Match
    target: Field
    value: Any = None


class Filter:
    """A compiled ``?filter=``. With ``late=True`` the selectors are checked against the
    first item filtered rather than up front, as Consul does for ``/v1/agent/checks``
    (there, a bad selector fails only when the agent has checks, and without the
    evaluator prefix)."""

    def __init__(self, expression: str, schema: Field, *, late: bool = False):
        self.schema = schema
        try:
            self._tree: Expression = parse(expression)
        except ParseError as exc:
            raise ConsulError(500, f"{_PREFIX}{exc}") from None
        self._checks: dict[int, _Check] | None = None
        if not late:
            self._checks = self._validate(_PREFIX)

    def _validate(self, prefix: str) -> dict[int, _Check]:
        checks: dict[int, _Check] = {}
        for match in _matches(self._tree):
            try:
                checks[id(match)] = _check(match, self.schema)
            except ValueError as exc:
                raise ConsulError(500, f"{prefix}{exc}") from None
        return checks

    def _ready(self, items: Iterable[Any]) -> bool:
        if self._checks is None:
            if not any(True for _ in items):
                return False
            self._checks = self._validate("")
        return True

    def apply(self, items: list[Any]) -> list[Any]:
        if not self._ready(items):
            return items
        return [item for item in items if self._evaluate(self._tree, item)]

    def apply_map(self, items: dict[str, Any]) -> dict[str, Any]:
        if not self._ready(items.values()):
            return items
        return {key: value for key, value in items.items() if self._evaluate(self._tree, value)}

    def _evaluate(self, node: Expression, item: Any) -> bool:
        if isinstance(node, And):
            return self._evaluate(node.left, item) and self._evaluate(node.right, item)
        if isinstance(node, Or):
            return self._evaluate(node.left, item) or self._evaluate(node.right, item)
        if isinstance(node, Not):
            return not self._evaluate(node.operand, item)
        assert self._checks is not None
        return _walk(self._checks[id(node)], item, self.schema, 0)


_PREFIX = "Failed to create boolean expression evaluator: "


def compile_filter(expression: str | None, schema: Field, *, late: bool = False) -> Filter | None:
    """The filter for ``expression``; None when absent or empty (Consul's nil filter)."""
    return Filter(expression, schema, late=late) if expression else None


def _matches(node: Expression) -> Iterable[Match]:
    if isinstance(node, Match):
        yield node
    elif isinstance(node, Not):
        yield from _matches(node.operand)
    else:
        yield from _matches(node.left)
        yield from _matches(node.right)


def _check(match: Match, schema: Field) -> _Check:
    target: Field | None = schema
    for i, step in enumerate(match.selector):
        target = target.child(step) if target is not None else None
        if target is None:
            raise ValueError(f'Selector "{".".join(match.selector[:i + 1])}" is not valid')
    assert target is not None
    selector = ".".join(match.selector)
    if match.operator not in target.operators:
        raise ValueError(f'Invalid match operator "{match.operator}" for selector "{selector}"')
    check = _Check(match, target)
    if match.value is None:
        return check
    kind = target.element.kind if target.kind == "list" and target.element else target.kind
    if target.kind == "map":
        kind = "str"  # map membership tests keys
    try:
        check.value = _coerce(kind, match.value)
    except ValueError as exc:
        raise ValueError(f'Failed to coerce value "{match.value}" for selector "{selector}": '
                         f"{exc}") from None
    if match.operator in (MATCHES, NOT_MATCHES):
        try:
            check.value = re.compile(match.value)
        except re.error as exc:
            raise ValueError(f'Failed to compile regular expression "{match.value}": '
                             f"error parsing regexp: {exc}") from None
    return check


def _coerce(kind: str, raw: str) -> Any:
    if kind == "str":
        return raw
    if kind == "bool":
        if raw in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if raw in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise ValueError(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
    if kind in ("int", "uint"):
        return _go_parse_int(raw, signed=kind == "int")
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{raw}": invalid syntax') from None


def _go_parse_int(raw: str, signed: bool) -> int:
    """strconv.ParseInt/ParseUint with base 0 (0x, 0o, 0b and leading-0 octal prefixes)."""
    func = "ParseInt" if signed else "ParseUint"
    text, sign = raw, 1
    if signed and text[:1] in "+-" and text:
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    base = 10
    lowered = text.lower()
    for prefix, prefix_base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if lowered.startswith(prefix):
            base, text = prefix_base, text[2:]
            break
    else:
        if len(text) > 1 and text.startswith("0"):
            base, text = 8, text[1:]
    if not text or not re.fullmatch(r"[0-9a-fA-F_]+", text) or text.startswith("_"):
        raise ValueError(f'strconv.{func}: parsing "{raw}": invalid syntax')
    try:
        return sign * int(text, base)
    except ValueError:
        raise ValueError(f'strconv.{func}: parsing "{raw}": invalid syntax') from None


def _walk(check: _Check, value: Any, field_type: Field, depth: int) -> bool:
    expr = check.expr
    if depth >= len(expr.selector):
        return _apply_operator(check, value)
    step = expr.selector[depth]
    if field_type.kind == "struct":
        sub = field_type.fields[step]
        found = value.get(step) if isinstance(value, dict) else None
        return _walk(check, sub.zero() if found is None else found, sub, depth + 1)
    if field_type.kind == "list":
        # Lists are searched, not indexed: any element that matches will do.
        element = field_type.element
        assert element is not None
        return any(_walk(check, item, element, depth) for item in (value or []))
    if field_type.kind == "map":
        element = field_type.element
        assert element is not None
        if not isinstance(value, dict) or step not in value:
            return expr.operator not in (EQUAL, IS_NOT_EMPTY, IN)
        found = value[step]
        return _walk(check, element.zero() if found is None else found, element, depth + 1)
    return False


def _apply_operator(check: _Check, value: Any) -> bool:
    op = check.expr.operator
    if op in (IS_EMPTY, IS_NOT_EMPTY):
        empty = not value
        return empty if op == IS_EMPTY else not empty
    if op in (EQUAL, NOT_EQUAL):
        equal = _equal(check.target.kind, check.value, value)
        return equal if op == EQUAL else not equal
    if op in (IN, NOT_IN):
        if isinstance(value, dict):
            found = check.value in value
        elif isinstance(value, list):
            element = check.target.element
            kind = element.kind if element else "str"
            found = any(_equal(kind, check.value, item) for item in value)
        else:
            found = str(check.value) in ("" if value is None else str(value))
        return found if op == IN else not found
    matched = bool(check.value.search("" if value is None else str(value)))
    return matched if op == MATCHES else not matched


def _equal(kind: str, wanted: Any, value: Any) -> bool:
    if value is None:
        value = Field(kind).zero() if kind in ("str", "int", "uint", "float", "bool") else None
    if kind == "str":
        return isinstance(value, str) and value == wanted
    if kind == "bool":
        return isinstance(value, bool) and value is wanted
    return not isinstance(value, bool) and isinstance(value, int | float) and value == wanted
