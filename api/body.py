"""The base of every request body, and the caps its fields share.

A body is checked whole before any field is: text must be valid Unicode without NUL (neither
SQLite's JSON nor PostgreSQL can store it and then give it back), numbers must be finite and
nesting shallow (the responses that echo it must still serialise). Then fields are strict, as
OpenAI's are: `"stream": "yes"` or `"limit": "5"` is a wrong type, not a value to coerce. So a
bad request is a 400 before anything is stored, never a row that breaks every later list.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, model_validator
from pydantic_core import PydanticCustomError

# OpenAI's documented limits (the SDK's docstrings), and ours where OpenAI states none.
MODEL_CHARS = 256  # ours: the longest model name accepted
NAME_CHARS = 256  # OpenAI: an assistant's name
DESCRIPTION_CHARS = 512  # OpenAI: an assistant's description
INSTRUCTIONS_CHARS = 256_000  # OpenAI: instructions; ours for additional_instructions too
MESSAGE_CHARS = 256_000  # ours: the text of one message, all its text parts together
ID_CHARS = 64  # ours: ids of stored objects (the width of their columns)
MAX_DEPTH = 64  # ours: nesting of a body's JSON (pydantic refuses to serialise past ~250)
INT4_MAX = 2**31 - 1  # PostgreSQL's integer columns

_SCANNING: ContextVar[bool] = ContextVar("assistd_body_scanning", default=False)
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


Id = Annotated[str, Field(min_length=1, max_length=ID_CHARS)]
ModelName = Annotated[str, Field(min_length=1, max_length=MODEL_CHARS)]
Name = Annotated[str, Field(max_length=NAME_CHARS)]
Description = Annotated[str, Field(max_length=DESCRIPTION_CHARS)]
Instructions = Annotated[str, Field(max_length=INSTRUCTIONS_CHARS)]
MessageText = Annotated[str, Field(max_length=MESSAGE_CHARS)]
Tokens = Annotated[int, Field(ge=1, le=INT4_MAX)]  # a count that lands in an integer column


class Body(BaseModel):
    """A request body: unknown parameters, lax types, bad text and non-finite numbers are 400s."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _scanned(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if _SCANNING.get():  # the enclosing body has scanned this part already
            return handler(data)
        problem = scan(data)
        if problem is not None:
            path, message = problem
            raise PydanticCustomError("invalid_json_value", message, {"path": path})
        token = _SCANNING.set(True)
        try:
            return handler(data)
        finally:
            _SCANNING.reset(token)

    def references(self) -> list[tuple[str, str]]:
        """(kind, id) of every stored object the body names ("file", "vector store"), in order."""
        out = list(self.refs())
        for name in type(self).model_fields:
            out += _references(getattr(self, name))
        return out

    def refs(self) -> list[tuple[str, str]]:
        """The objects this part itself names; parts holding ids override it."""
        return []


def _references(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Body):
        return value.references()
    if isinstance(value, list):
        return [r for item in value for r in _references(item)]
    return []


def scan(data: Any) -> tuple[str, str] | None:
    """(path, what is wrong) for the first value no stored JSON may hold, or None.

    Iterative, so a body nested as deep as the JSON parser allows cannot overflow the stack."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            bad = _BAD_TEXT.search(value)
            if bad is not None:
                what = "a NUL character" if bad.group() == "\x00" else "a lone UTF-16 surrogate"
                return path, f"text must be valid Unicode without NUL characters; found {what}"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return path, "numbers must be finite (NaN and Infinity are not JSON)"
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                return path, f"JSON may nest at most {MAX_DEPTH} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
                if isinstance(key, str) and _BAD_TEXT.search(key):
                    return path, "keys must be valid Unicode without NUL characters"
                stack.append((item, sub, depth + 1))
    return None
