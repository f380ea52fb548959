"""A whole (non-streamed) answer read from its JSON, as OpenAI-compatible servers send it."""

from __future__ import annotations

import json

import pytest

from workers.streaming import Turn


def test_openai_shaped_answer() -> None:
    answer = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    turn = Turn.of(answer)
    assert (turn.text, turn.finish_reason) == ("", "tool_calls")
    assert turn.calls == [{"id": "call_1", "name": "f", "arguments": '{"a": 1}'}]
    assert turn.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_what_other_servers_send() -> None:
    """JSON without a JSON content type (the SDK hands over text), calls without a type and with
    their arguments as an object, usage without a total, or none at all."""
    answer = {
        "choices": [
            {
                "finish_reason": "stop",
                "message": {
                    "content": "hi",
                    "tool_calls": [{"id": "call_2", "function": {"name": "g", "arguments": {"b": [1, 2]}}}],
                },
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    turn = Turn.of(json.dumps(answer))
    assert turn.text == "hi" and turn.calls == [{"id": "call_2", "name": "g", "arguments": '{"b": [1, 2]}'}]
    assert turn.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    bare = Turn.of({"choices": [{"message": {"content": "ok"}}]})
    # no usage is unknown usage, never zero (the run then reports null)
    assert bare.usage == {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


@pytest.mark.parametrize("answer", ["<html>Bad gateway</html>", {"error": "x"}, {"choices": []}, None])
def test_not_a_completion(answer: object) -> None:
    with pytest.raises(ValueError):
        Turn.of(answer)
