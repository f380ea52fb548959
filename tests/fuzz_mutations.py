"""Requests a schema-driven generator will not write: raw JSON literals and odd query strings.

A mutation takes a valid generated request and spoils one spot of it. The spoilers are raw text
because Python's json module cannot write most of them as values (a lone surrogate, NaN, 1e400).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

MARK = "\u0000fuzz-mark\u0000"  # stands for the spot in the serialised body, replaced by raw text
BIG = "x" * 1_000_001

# raw JSON for a body value, by what it breaks
BODY_LITERALS: dict[str, list[str]] = {
    "lone surrogate": ['"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"', '{"\\ud800": "v"}'],
    "NaN/Infinity": ["NaN", "Infinity", "-Infinity"],
    "huge number": [str(2**63), str(-(2**63) - 1), "1e30", "1e400", str(10**40)],
    "string for boolean": ['"true"', '"false"', '"yes"', '"1"'],
    "oversize string": [json.dumps(BIG)],
    "deep nesting": ["[" * 100_000 + "]" * 100_000],
}
# spoilers of the whole body: (kind, how the serialised body becomes the sent one, content type)
WHOLE_BODY: list[tuple[str, Callable[[str], str], str]] = [
    ("malformed JSON", lambda text: text[:-1], "application/json"),
    ("malformed JSON", lambda text: text + "}", "application/json"),
    ("malformed JSON", lambda text: "", "application/json"),
    ("wrong content type", lambda text: text, "text/plain"),
    ("wrong content type", lambda text: text, "application/x-www-form-urlencoded"),
]
# raw query values (already percent-encoded)
QUERY_VALUES: dict[str, list[str]] = {
    "surrogate in query": ["%ED%A0%80", "a%ED%B2%80b"],  # UTF-8 spelling of U+D800 / U+DC80: not valid UTF-8
    "invalid utf-8 in query": ["%FF", "%C3"],
    "huge number in query": [str(2**63), "1e30", "NaN", "Infinity", str(10**40)],
    "oversize query value": ["x" * 8000],  # stays under the HTTP server's request-line limit
}
# raw path segments; ".." is spelled encoded, as the HTTP client would resolve the plain one itself
PATH_VALUES = ["%ED%A0%80", "%FF", "%00", "x" * 4000, quote("\U0001f600"), "%2E%2E", "%2F"]


@dataclass
class Mutation:
    kind: str
    where: str  # "body <path>", "query <name>" or "path <name>"
    body: bytes | None = None  # the whole spoiled body, when the body was the target
    content_type: str = "application/json"
    query: list[str] | None = None  # raw `name=value` pairs to append
    path: dict[str, str] | None = None  # raw (already encoded) path parameter values


def spots(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value that holds something: keys of objects, items of arrays."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        out.append(prefix + (key,))
        out += spots(item, prefix + (key,))
    return out


def spoil(body: Any, spot: tuple[Any, ...], literal: str) -> bytes:
    body = json.loads(json.dumps(body))  # a copy
    target = body
    for key in spot[:-1]:
        target = target[key]
    target[spot[-1]] = MARK
    text = json.dumps(body).replace(json.dumps(MARK), literal, 1)
    return text.encode()


# what each body literal belongs in: (Python types of a value already there, JSON types in the schema)
SLOTS: dict[str, tuple[tuple[type, ...], tuple[str, ...]]] = {
    "lone surrogate": ((str, dict), ("string", "object")),
    "oversize string": ((str,), ("string",)),
    "NaN/Infinity": ((int, float), ("number", "integer")),
    "huge number": ((int, float), ("number", "integer")),
    "string for boolean": ((bool,), ("boolean",)),
}


def kinds(body: bool, query: bool, path: bool) -> list[str]:
    """The mutation kinds that apply to an operation with (or without) a JSON body, query, path."""
    out = [*BODY_LITERALS, *sorted({k for k, _, _ in WHOLE_BODY})] if body else []
    out += ["repeated parameter", *QUERY_VALUES] if query else []
    return out + (["odd path parameter"] if path else [])


def slots(body: dict[str, Any], properties: dict[str, Any], kind: str) -> list[tuple[Any, ...]]:
    """Spots for a literal of this kind: where such a value is, or where the schema says it goes."""
    everywhere = sorted(set(spots(body)) | {(k,) for k in properties}, key=repr)
    if kind not in SLOTS:
        return everywhere
    types, names = SLOTS[kind]
    fitting = {
        spot
        for spot in spots(body)
        if isinstance(at(body, spot), types) and not (bool not in types and isinstance(at(body, spot), bool))
    }
    fitting |= {
        (k,) for k, schema in properties.items() if any(f'"{n}"' in json.dumps(schema) for n in names)
    }
    return sorted(fitting, key=repr) or everywhere


def at(value: Any, spot: tuple[Any, ...]) -> Any:
    for key in spot:
        value = value[key]
    return value


@st.composite
def mutations(
    draw: st.DrawFn,
    kind: str,
    body: dict[str, Any],
    properties: dict[str, Any],
    query: list[str],
    path: list[str],
) -> Mutation:
    """A mutation of this kind of a request whose JSON body is `body` (its schema's top-level
    properties are `properties`), and which takes these query and path parameter names."""
    if kind in BODY_LITERALS:
        spot = draw(st.sampled_from(slots(body, properties, kind)))
        literal = draw(st.sampled_from(BODY_LITERALS[kind]))
        return Mutation(kind, "body " + ".".join(map(str, spot)), body=spoil(body, spot, literal))
    if kind in {k for k, _, _ in WHOLE_BODY}:
        _, spoilt, content_type = draw(st.sampled_from([w for w in WHOLE_BODY if w[0] == kind]))
        return Mutation(kind, "body", body=spoilt(json.dumps(body)).encode(), content_type=content_type)
    if kind == "odd path parameter":
        name = draw(st.sampled_from(path))
        return Mutation(kind, f"path {name}", path={name: draw(st.sampled_from(PATH_VALUES))})
    name = draw(st.sampled_from(query))
    if kind == "repeated parameter":
        values = ["20", "30"] if name == "limit" else draw(st.sampled_from([["asc", "desc"], ["a", "b"]]))
        return Mutation(kind, f"query {name}", query=[f"{quote(name)}={v}" for v in values])
    return Mutation(
        kind, f"query {name}", query=[f"{quote(name)}={draw(st.sampled_from(QUERY_VALUES[kind]))}"]
    )
