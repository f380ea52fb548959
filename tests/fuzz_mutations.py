"""Requests a schema-driven generator will not write: raw JSON literals and odd query strings.

A mutation takes a valid generated request and spoils one spot of it. The spoilers are raw text
because Python's json module cannot write most of them as values (a lone surrogate, NaN, 1e400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

MARK = "\u0000fuzz-mark\u0000"  # stands for the spot in the serialised body, replaced by raw text
BIG = "x" * 1_000_001

# raw JSON for a body value, by what it breaks
BODY_LITERALS: dict[str, list[str]] = {
    "lone surrogate": ['"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"'],
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
    "lone surrogate": ["%ED%A0%80", "a%ED%B2%80b"],  # UTF-8 spelling of U+D800 / U+DC80: not valid UTF-8
    "invalid utf-8": ["%FF", "%C3"],
    "huge number": [str(2**63), "1e30", "NaN", "Infinity", str(10**40)],
    "oversize string": ["x" * 8000],  # stays under the HTTP server's request-line limit
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


@st.composite
def mutations(draw: st.DrawFn, body: Any, properties: dict[str, Any], query: list[str],
              path: list[str]) -> Mutation:
    """One mutation of a request whose JSON body is `body` (None: no body), whose schema's
    top-level body properties are `properties`, and which takes these query and path names."""
    targets = (["body"] if isinstance(body, dict) else []) + (["query"] * bool(query)) + (["path"] * bool(path))
    target = draw(st.sampled_from(targets))
    if target == "body" and draw(st.integers(0, 5)) == 0:
        kind, spoilt, content_type = draw(st.sampled_from(WHOLE_BODY))
        return Mutation(kind, "body", body=spoilt(json.dumps(body)).encode(), content_type=content_type)
    if target == "body":
        booleans = [(k,) for k, s in properties.items() if "boolean" in json.dumps(s)]
        kind = draw(st.sampled_from(sorted(BODY_LITERALS)))
        choices = booleans if kind == "string for boolean" and booleans else \
            sorted(set(spots(body)) | {(k,) for k in properties}, key=repr)
        spot = draw(st.sampled_from(choices))
        literal = draw(st.sampled_from(BODY_LITERALS[kind]))
        return Mutation(kind, "body " + ".".join(map(str, spot)), body=spoil(body, spot, literal))
    if target == "query":
        name = draw(st.sampled_from(query))
        kind = draw(st.sampled_from(["repeated parameter", *sorted(QUERY_VALUES)]))
        if kind == "repeated parameter":
            values = ["20", "30"] if name == "limit" else draw(st.sampled_from([["asc", "desc"], ["a", "b"]]))
            return Mutation(kind, f"query {name}", query=[f"{quote(name)}={v}" for v in values])
        value = draw(st.sampled_from(QUERY_VALUES[kind]))
        return Mutation(kind, f"query {name}", query=[f"{quote(name)}={value}"])
    name = draw(st.sampled_from(path))
    return Mutation("odd path parameter", f"path {name}", path={name: draw(st.sampled_from(PATH_VALUES))})
