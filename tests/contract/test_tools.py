"""The tool loop through the official SDK: requires_action, submit_tool_outputs, tool_choice, steps."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI
from openai.types.beta.threads import Run
from openai.types.beta.threads.runs import RunStep

from tests.conftest import KEY_A, ScriptedModel, Server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": arguments}


def scripted(client: OpenAI, model_server: ScriptedModel, responses: list[dict[str, Any]]) -> tuple[Any, Any]:
    """An assistant whose model plays `responses`, and a thread with one user message."""
    model = model_server.script(str(uuid.uuid4()), responses)
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER, TIME], instructions="use tools")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}]
    )
    return assistant, thread


def strict_steps(server: Server, run: Any) -> list[RunStep]:
    """The run's steps as raw JSON, validated against the SDK's types (the SDK itself does not validate)."""
    raw = httpx.get(
        f"{server.url}/v1/threads/{run.thread_id}/runs/{run.id}/steps?order=asc",
        headers={"Authorization": f"Bearer {KEY_A}"},
    ).json()
    return [RunStep.model_validate(s) for s in raw["data"]]


def test_one_call(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant, thread = scripted(
        client,
        model_server,
        [
            {"tool_calls": [call("call_one")]},
            {"content": "It is sunny in Paris.", "expect_tool_results": [["call_one", "sunny, 24C"]]},
        ],
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action" and run.expires_at
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("call_one", "function", "get_weather", '{"city": "Paris"}')
    ]
    (step,) = strict_steps(server, run)
    assert step.type == "tool_calls" and step.status == "in_progress"
    assert step.step_details.tool_calls[0].function.output is None
    first_usage = run.usage.total_tokens
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "call_one", "output": "sunny, 24C"}],
    )
    assert run.status == "completed" and run.required_action is None
    assert run.usage.total_tokens > first_usage
    steps = strict_steps(server, run)
    assert [(s.type, s.status) for s in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    assert steps[0].step_details.tool_calls[0].function.output == "sunny, 24C"
    assert sum(s.usage.total_tokens for s in steps) == run.usage.total_tokens
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert [m.content[0].text.value for m in messages.data] == [
        "It is sunny in Paris.",
        "What's the weather in Paris?",
    ]
    assert messages.data[0].run_id == run.id and messages.data[0].assistant_id == assistant.id


def test_parallel_calls_answered_in_any_order(client: OpenAI, model_server: ScriptedModel) -> None:
    assistant, thread = scripted(
        client,
        model_server,
        [
            {"tool_calls": [call("call_1"), call("call_2", "get_time", "{}")]},
            {"content": "Done.", "expect_tool_results": [["call_1", "rain"], ["call_2", "noon"]]},
        ],
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert [c.id for c in run.required_action.submit_tool_outputs.tool_calls] == ["call_1", "call_2"]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[
            {"tool_call_id": "call_2", "output": "noon"},
            {"tool_call_id": "call_1", "output": "rain"},
        ],
    )
    assert run.status == "completed", run.last_error


def test_two_rounds_and_text_before_a_call(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    assistant, thread = scripted(
        client,
        model_server,
        [
            {"content": "Let me check.", "tool_calls": [call("call_a")]},
            {"tool_calls": [call("call_b", "get_time", "{}")], "expect_tool_results": [["call_a", "cloudy"]]},
            {"content": "Cloudy at noon.", "expect_tool_results": [["call_b", "noon"]]},
        ],
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_a", "output": "cloudy"}]
    )
    assert run.status == "requires_action"
    assert [c.id for c in run.required_action.submit_tool_outputs.tool_calls] == ["call_b"]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_b", "output": "noon"}]
    )
    assert run.status == "completed", run.last_error
    steps = strict_steps(server, run)
    assert [s.type for s in steps] == ["message_creation", "tool_calls", "tool_calls", "message_creation"]
    texts = [
        m.content[0].text.value for m in client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    ]
    assert texts == ["What's the weather in Paris?", "Let me check.", "Cloudy at noon."]
    # the second round saw the first round's text and call together, then the output
    sent = [r["body"] for r in model_server.requests(run.model)]
    assistant_turn = sent[1]["messages"][-2]
    assert assistant_turn["content"] == "Let me check." and assistant_turn["tool_calls"][0]["id"] == "call_a"


def test_invalid_submissions_change_nothing(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    assistant, thread = scripted(client, model_server, [{"tool_calls": [call("call_1"), call("call_2")]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    bad = [
        [{"tool_call_id": "call_1", "output": "x"}],  # missing call_2
        [{"tool_call_id": "call_1", "output": "x"}, {"tool_call_id": "call_9", "output": "x"}],  # unknown
        [
            {"tool_call_id": "call_1", "output": "x"},
            {"tool_call_id": "call_1", "output": "y"},
            {"tool_call_id": "call_2", "output": "x"},
        ],  # duplicate
    ]
    for outputs in bad:
        with pytest.raises(BadRequestError) as info:
            client.beta.threads.runs.submit_tool_outputs(
                run_id=run.id, thread_id=thread.id, tool_outputs=outputs
            )
        assert info.value.body["param"] == "tool_outputs"
        again = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        assert again.status == "requires_action" and again.required_action == run.required_action
        assert strict_steps(server, run)[0].status == "in_progress"
    done = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert strict_steps(server, run)[0].status == "cancelled"
    with pytest.raises(BadRequestError):  # wrong state
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[
                {"tool_call_id": "call_1", "output": "x"},
                {"tool_call_id": "call_2", "output": "x"},
            ],
        )


def test_requires_action_expires(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant, thread = scripted(client, model_server, [{"tool_calls": [call("call_1")]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.time() + 20
    while (run := client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status == "requires_action":
        assert time.time() < deadline
        time.sleep(0.2)
    assert run.status == "expired" and run.expires_at is None and run.required_action is None
    assert strict_steps(server, run)[0].status == "expired"
    with pytest.raises(BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_1", "output": "late"}]
        )


@pytest.mark.parametrize(
    ("tool_choice", "sent"),
    [
        ("none", "none"),
        ("required", "required"),
        ("auto", "auto"),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_reaches_the_model(
    client: OpenAI, model_server: ScriptedModel, tool_choice: Any, sent: Any
) -> None:
    model = f"text:choice-{uuid.uuid4()}"
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER, TIME])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        tool_choice=tool_choice,
        parallel_tool_calls=False,
        thread={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert run.status == "completed"
    (request,) = model_server.requests(model)
    assert request["body"]["tool_choice"] == sent and request["body"]["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in request["body"]["tools"]] == ["get_weather", "get_time"]


def test_bad_tool_choice(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="echo", tools=[WEATHER])
    thread = client.beta.threads.create()
    for choice in ({"type": "function", "function": {"name": "nope"}}, {"type": "code_interpreter"}):
        with pytest.raises(BadRequestError) as info:
            client.beta.threads.runs.create(
                thread_id=thread.id, assistant_id=assistant.id, tool_choice=choice
            )
        assert info.value.body["param"].startswith("tool_choice")
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def test_create_and_run_with_run_tools(client: OpenAI, model_server: ScriptedModel) -> None:
    model = model_server.script(str(uuid.uuid4()), [{"tool_calls": [call("c1")]}])
    assistant = client.beta.assistants.create(model=model)  # no tools of its own
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        tools=[WEATHER],
        thread={"messages": [{"role": "user", "content": "weather?"}]},
    )
    assert run.status == "requires_action" and run.tools[0].function.name == "get_weather"
    Run.model_validate(run.model_dump())
