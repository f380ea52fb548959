"""The runs router's checks that need no database (api/routes/runs.py): a forced tool must be one
the run has, and tool outputs answer every pending call exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import BadRequest
from api.routes.runs import check_outputs, check_tool_choice
from api.schemas import SubmitToolOutputs, ToolChoiceObject
from core.models import Run

FUNCTION = {"type": "function", "function": {"name": "lookup"}}
FILE_SEARCH = {"type": "file_search"}
CODE = {"type": "code_interpreter"}


def choice(data: Any) -> Any:
    return ToolChoiceObject.model_validate(data) if isinstance(data, dict) else data


@pytest.mark.parametrize(
    ("tool_choice", "tools"),
    [
        ("required", []),
        ({"type": "file_search"}, [FILE_SEARCH]),
        ({"type": "retrieval"}, [FILE_SEARCH]),  # v1's name for file_search
        ({"type": "function", "function": {"name": "lookup"}}, [CODE, FUNCTION]),
        (None, []),
    ],
)
def test_a_forced_tool_the_run_has_passes(tool_choice: Any, tools: list[dict[str, Any]]) -> None:
    check_tool_choice(choice(tool_choice), tools)


@pytest.mark.parametrize(
    ("tool_choice", "tools", "param"),
    [
        ({"type": "code_interpreter"}, [FILE_SEARCH, FUNCTION], "tool_choice"),
        ({"type": "function", "function": {"name": "other"}}, [FUNCTION], "tool_choice"),
        ({"type": "function", "function": {"name": "code_interpreter"}}, [CODE], "tool_choice"),
        ({"type": "function"}, [FUNCTION], "tool_choice.function"),
    ],
)
def test_a_forced_tool_the_run_lacks_is_a_400(
    tool_choice: Any, tools: list[dict[str, Any]], param: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        check_tool_choice(choice(tool_choice), tools)
    assert caught.value.status == 400 and caught.value.param == param


def waiting_for(*call_ids: str) -> Run:
    calls = [
        {"id": i, "type": "function", "function": {"name": "lookup", "arguments": "{}"}} for i in call_ids
    ]
    return Run(
        project="p",
        thread_id="thread_1",
        assistant_id="asst_1",
        model="echo",
        status="requires_action",
        required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}},
    )


def outputs(*call_ids: str) -> SubmitToolOutputs:
    return SubmitToolOutputs.model_validate(
        {"tool_outputs": [{"tool_call_id": i, "output": f"out {i}"} for i in call_ids]}
    )


def test_outputs_for_every_pending_call_in_any_order() -> None:
    assert check_outputs(waiting_for("call_1", "call_2"), outputs("call_2", "call_1")) == {
        "call_1": "out call_1",
        "call_2": "out call_2",
    }


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (("call_1", "call_1", "call_2"), "Duplicate tool outputs for tool call(s): call_1."),
        (("call_1", "call_2", "call_3"), "Unknown tool outputs for tool call(s): call_3."),
        (("call_2",), "Missing tool outputs for tool call(s): call_1."),
        ((), "Missing tool outputs for tool call(s): call_1, call_2."),
    ],
)
def test_outputs_answer_each_call_exactly_once(given: tuple[str, ...], problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_outputs(waiting_for("call_1", "call_2"), outputs(*given))
    assert caught.value.param == "tool_outputs"
    assert caught.value.message.startswith(problem)
    assert caught.value.message.endswith("Expected one output for each of call_1, call_2.")
