"""Attribute filters of vector store search, as OpenAI's API takes them.

    comparison  {"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key": str, "value": ...}
    compound    {"type": "and"|"or", "filters": [comparison | compound, ...]}

`parse` checks a filter and compiles it into a predicate over a file's attributes; a bad
filter raises FilterError naming the offending parameter. A file without the key never
matches, except under `ne` and `nin`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from retrieval.errors import FilterError as FilterError  # re-exported: callers import it from here too

Attributes = dict[str, Any]
Predicate = Callable[[Attributes], bool]

ORDERED = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
COMPARISONS = ("eq", "ne", *ORDERED, "in", "nin")
MAX_DEPTH = 8


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _same(a: Any, b: Any) -> bool:
    # True is not 1 here: a boolean attribute only equals a boolean value
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        or isinstance(a, str)
        and isinstance(b, str)
    )


def _comparison(kind: str, key: str, value: Any, param: str) -> Predicate:
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(_scalar(v) and not isinstance(v, bool) for v in value):
            raise FilterError(f"'{kind}' needs a list of strings or numbers as its value.", f"{param}.value")

        def inside(a: Attributes) -> bool:
            return key in a and any(_same(a[key], v) for v in value)

        return inside if kind == "in" else (lambda a: not inside(a))
    if not _scalar(value):
        raise FilterError(f"'{kind}' needs a string, number or boolean as its value.", f"{param}.value")
    if kind == "eq":
        return lambda a: key in a and _same(a[key], value)
    if kind == "ne":
        return lambda a: not (key in a and _same(a[key], value))
    op = ORDERED[kind]
    if isinstance(value, bool):
        raise FilterError(f"'{kind}' needs a string or number as its value.", f"{param}.value")
    return lambda a: key in a and _comparable(a[key], value) and bool(op(a[key], value))


def parse(spec: Any, param: str = "filters", depth: int = 0) -> Predicate:
    """Check `spec` and compile it; FilterError (with the parameter's path) when it is malformed."""
    if not isinstance(spec, dict):
        raise FilterError("A filter must be an object.", param)
    kind = spec.get("type")
    if kind in ("and", "or"):
        if set(spec) - {"type", "filters"}:
            raise FilterError(
                f"Unknown parameter: '{param}.{sorted(set(spec) - {'type', 'filters'})[0]}'.", param
            )
        subs = spec.get("filters")
        if not isinstance(subs, list) or not subs:
            raise FilterError("A compound filter needs a non-empty list of filters.", f"{param}.filters")
        if depth >= MAX_DEPTH:
            raise FilterError(f"Filters can be nested at most {MAX_DEPTH} deep.", param)
        parts = [parse(s, f"{param}.filters[{i}]", depth + 1) for i, s in enumerate(subs)]
        combine = all if kind == "and" else any
        return lambda a: combine(p(a) for p in parts)
    if kind not in COMPARISONS:
        raise FilterError(
            f"Invalid value for '{param}.type': expected one of {', '.join(COMPARISONS)}, and, or.",
            f"{param}.type",
        )
    extra = set(spec) - {"type", "key", "value"}
    if extra:
        raise FilterError(f"Unknown parameter: '{param}.{sorted(extra)[0]}'.", f"{param}.{sorted(extra)[0]}")
    key = spec.get("key")
    if not isinstance(key, str) or not key:
        raise FilterError("A comparison filter needs a string 'key'.", f"{param}.key")
    if "value" not in spec:
        raise FilterError("A comparison filter needs a 'value'.", f"{param}.value")
    return _comparison(kind, key, spec["value"], param)
