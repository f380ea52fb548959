"""The base of every request body (api/body.py): text, numbers and nesting are checked whole,
then fields strictly."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.body import INT4_MAX, MAX_DEPTH, Body, Id, Tokens, scan


class Part(Body):
    name: str
    file_id: Id | None = None

    def refs(self) -> list[tuple[str, str]]:
        return [("file", self.file_id)] if self.file_id else []


class Probe(Body):
    stream: bool | None = None
    limit: Tokens | None = None
    part: Part | None = None
    parts: list[Part] = []
    anything: Any = None


def problem(data: dict[str, Any]) -> tuple[str, str, str]:
    """(type, path, message) of the one error `data` gets."""
    with pytest.raises(ValidationError) as caught:
        Probe.model_validate(data)
    [err] = caught.value.errors()
    return err["type"], (err.get("ctx") or {}).get("path", ""), err["msg"]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("data", "path", "found"),
    [
        ({"part": {"name": "a\x00b"}}, "part.name", "NUL character"),
        ({"parts": [{"name": "ok"}, {"name": "\ud800"}]}, "parts[1].name", "lone UTF-16 surrogate"),
        ({"anything": {"deep": ["x", "\udfff"]}}, "anything.deep[1]", "lone UTF-16 surrogate"),
        ({"anything": {"k\x00": 1}}, "anything", "keys must be valid Unicode"),
        ({"anything": [1.5, float("nan")]}, "anything[1]", "finite"),
        ({"anything": {"x": float("-inf")}}, "anything.x", "finite"),
    ],
)
def test_text_that_cannot_be_stored_and_numbers_that_are_not_json_are_refused_with_their_path(
    data: dict[str, Any], path: str, found: str
) -> None:
    assert problem(data)[:2] == ("invalid_json_value", path)
    assert found in problem(data)[2]


def test_nesting_is_capped() -> None:
    # the body is level 0, `anything` level 1: its lists may reach level MAX_DEPTH - 1, not deeper
    Probe.model_validate({"anything": nested(MAX_DEPTH - 1)})
    kind, _, message = problem({"anything": nested(MAX_DEPTH)})
    assert kind == "invalid_json_value" and f"at most {MAX_DEPTH} levels" in message


def test_the_scan_survives_what_recursion_would_not() -> None:
    got = scan({"anything": nested(100_000)})
    assert got is not None and "levels deep" in got[1]


def test_fields_are_strict_and_unknown_ones_refused() -> None:
    assert problem({"stream": "yes"})[0] == "bool_type"
    assert problem({"limit": "5"})[0] == "int_type"
    assert problem({"streaming": True})[0] == "extra_forbidden"
    assert problem({"part": {"name": "x", "extra": 1}})[0] == "extra_forbidden"


def test_token_counts_fit_an_integer_column() -> None:
    assert Probe.model_validate({"limit": INT4_MAX}).limit == INT4_MAX
    assert problem({"limit": INT4_MAX + 1})[0] == "less_than_equal"
    assert problem({"limit": 0})[0] == "greater_than_equal"
    assert problem({"part": {"name": "x", "file_id": "f" * 65}})[0] == "string_too_long"


def test_each_validation_scans_again() -> None:
    """A nested part is scanned once, by the body around it; the next body is scanned afresh."""
    Probe.model_validate({"part": {"name": "fine"}})
    assert problem({"part": {"name": "\x00"}})[1] == "part.name"
    with pytest.raises(ValidationError):
        Part.model_validate({"name": "\x00"})  # a part validated on its own scans itself


def test_references_are_collected_through_parts_and_lists_in_order() -> None:
    body = Probe.model_validate(
        {
            "part": {"name": "a", "file_id": "file-1"},
            "parts": [{"name": "b"}, {"name": "c", "file_id": "file-2"}],
        }
    )
    assert body.references() == [("file", "file-1"), ("file", "file-2")]
