"""Runs against the quirks of real inference servers (llama.cpp, vLLM, Ollama), played by the
scripted model's `@` modes: each of these once broke a run that worked against the scripted
model's kinder defaults."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads.runs import ToolCall
from typing_extensions import override

from tests.conftest import ScriptedModel, Server, start_embedded, stop
from tests.procs import SMALL_MODEL

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}


def unique(text: str) -> str:
    """A user text of this test's own: both modes' servers share one scripted model."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def weather_assistant(client: OpenAI, model: str) -> Any:
    return client.beta.assistants.create(model=model, tools=[WEATHER])  # type: ignore[list-item]


def submit_all(client: OpenAI, run: Any, output: str = "sunny") -> Any:
    outputs = [
        {"tool_call_id": c.id, "output": output} for c in run.required_action.submit_tool_outputs.tool_calls
    ]
    return client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=run.thread_id, tool_outputs=outputs
    )  # type: ignore[arg-type]


def test_tool_round_replays_text_as_empty_string(client: OpenAI, model_server: ScriptedModel) -> None:
    """A server that refuses `content: null` on the replayed tool-call turn (llama.cpp's)."""
    weather_in_null_town = unique("weather in null town")
    model = "toolonce:get_weather@strict"
    assistant = weather_assistant(client, model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": weather_in_null_town}]}
    )
    assert run.status == "requires_action"
    run = submit_all(client, run)
    assert run.status == "completed", run.last_error
    replayed = [
        r["body"] for r in model_server.requests(model) if _last_user(r["body"]) == weather_in_null_town
    ]
    turn = [m for m in replayed[-1]["messages"] if m.get("tool_calls")][0]
    assert turn["content"] == ""


def _last_user(body: dict[str, Any]) -> str:
    return ([m["content"] for m in body["messages"] if m["role"] == "user"] or [""])[-1]


def test_named_function_is_forced_in_the_first_round_only(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    """A real model obeys a forced tool_choice in every round it is sent in."""
    forced_once = unique("forced once")
    model = "toolonce:get_weather@obey"
    assistant = weather_assistant(client, model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        tool_choice=FORCED,  # type: ignore[arg-type]
        thread={"messages": [{"role": "user", "content": forced_once}]},
    )
    assert run.status == "requires_action"
    run = submit_all(client, run)
    assert run.status == "completed", (run.status, run.required_action)
    sent = [r["body"] for r in model_server.requests(model) if _last_user(r["body"]) == forced_once]
    assert [b["tool_choice"] for b in sent] == [FORCED, "auto"]


def test_cut_stream_fails_the_run(client: OpenAI, assistant: Any) -> None:
    """A server that fails inside its stream: no finish_reason, no [DONE]."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "cut me off half way"}])
    names: list[str] = []
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, model="echo@cut"
    ) as stream:
        for event in stream:
            names.append(event.event)
    assert names[-1] == "thread.run.failed" and "thread.message.incomplete" in names
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status == "failed" and run.last_error is not None and run.last_error.code == "server_error"
    assert "finish_reason" in run.last_error.message
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.role == "user"  # the cut answer is never stored as the assistant's


class Calls(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.done: list[ToolCall] = []

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.done.append(tool_call)


def test_repeated_ids_in_chunks_reach_the_sdk_once(client: OpenAI) -> None:
    """A server that repeats id, type and name in every chunk of a streamed call."""
    assistant = weather_assistant(client, "toolonce:get_weather@repeat-ids")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "a long question about the weather"}]
    )
    handler = Calls()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as s:
        s.until_done()
    run = handler.current_run
    assert run is not None and run.status == "requires_action"
    (call,) = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    (done,) = handler.done
    assert done.type == "function"
    assert (done.id, done.function.name) == (call.id, "get_weather")
    assert json.loads(done.function.arguments) == {"text": "a long question about the weather"}


def test_stream_without_usage_records_null(client: OpenAI, assistant: Any) -> None:
    """A server that ignores stream_options.include_usage: usage is unknown, not zero."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count nothing"}])
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, model="echo@no-usage"
    ) as stream:
        stream.until_done()
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status == "completed" and run.usage is None
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert steps and all(s.usage is None for s in steps)


def test_long_thread_leaves_room_for_the_answer(client: OpenAI, model_server: ScriptedModel) -> None:
    """30 messages of about 150 tokens in a 4,096-token window, no max_completion_tokens: the
    prompt leaves a quarter of the window for the answer, and the limit goes as max_tokens (the
    endpoint's token_limit_field)."""
    assistant = client.beta.assistants.create(
        model=SMALL_MODEL, instructions="Answer briefly.", tools=[WEATHER]
    )  # type: ignore[list-item]
    thread, tag = client.beta.threads.create(), uuid.uuid4().hex[:8]
    for i in range(30):
        client.beta.threads.messages.create(
            thread_id=thread.id, role="user", content=f"{tag} note {i} " + "lorem " * 100
        )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    (sent,) = [
        r["body"] for r in model_server.requests(SMALL_MODEL) if f"{tag} note 29 " in _last_user(r["body"])
    ]
    assert sent["max_tokens"] == 1024 and "max_completion_tokens" not in sent
    # the prompt's size as the builder estimates it (about four characters a token)
    prompt = (
        sum(len(m["content"]) // 4 + 5 for m in sent["messages"]) + len(json.dumps(sent["tools"])) // 4 + 1
    )
    assert 2000 < prompt <= 4096 - 1024
    assert sent["messages"][-1]["content"].startswith(f"{tag} note 29 ")


def test_a_token_limit_is_always_sent(client: OpenAI, assistant: Any, model_server: ScriptedModel) -> None:
    how_long_may_you_talk = unique("how long may you talk")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": how_long_may_you_talk}]}
    )
    assert run.status == "completed"
    (sent,) = [
        r["body"] for r in model_server.requests("echo") if _last_user(r["body"]) == how_long_may_you_talk
    ]
    assert sent["max_completion_tokens"] == 4096  # the completion reserve: the window is 128k


def test_model_key_never_reaches_last_error(client: OpenAI, model_server: ScriptedModel) -> None:
    leaked = (
        "Incorrect API key provided: sk-proj-abcd****************************wxyz. You can find your key."
    )
    model = model_server.script("leaky-401", [{"error": 401, "message": leaked}])
    assistant = client.beta.assistants.create(model=model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "leak it"}]}
    )
    assert run.status == "failed" and run.last_error is not None
    assert "sk-" not in run.last_error.message and "wxyz" not in run.last_error.message
    bad = model_server.script(
        "leaky-400", [{"error": 400, "message": "bad key sk-live-0123456789abcdef in body"}]
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, model=bad, thread={"messages": [{"role": "user", "content": "leak it"}]}
    )
    assert run.status == "failed" and run.last_error is not None and run.last_error.code == "invalid_prompt"
    assert "sk-live" not in run.last_error.message and "[redacted]" in run.last_error.message


@pytest.fixture(scope="module")
def impatient(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An embedded server whose model timeout (1 s) is shorter than the slow model's answer."""
    server = start_embedded(
        model_server,
        Path(tmp_path_factory.mktemp("impatient")),
        extra={"ASSISTD_MODEL_TIMEOUT_SECONDS": "1", "ASSISTD_MODEL_MAX_RETRIES": "2"},
    )
    yield server
    stop(server.procs)


def test_timed_out_request_is_not_sent_again(impatient: Server, model_server: ScriptedModel) -> None:
    """The server may still be generating the first answer: a retry would queue behind it."""
    take_your_time = unique("take your time")
    client = impatient.client()
    assistant = client.beta.assistants.create(model="slow:2500")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": take_your_time}]}
    )
    assert run.status == "failed" and run.last_error is not None
    assert "did not answer in time" in run.last_error.message
    sent = [r for r in model_server.requests("slow:2500") if _last_user(r["body"]) == take_your_time]
    assert len(sent) == 1


def test_a_huge_answer_limit_still_leaves_room_for_the_prompt(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    answer_at_any_length = unique("answer at any length")
    assistant = client.beta.assistants.create(model=SMALL_MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        max_completion_tokens=2**31 - 1,
        thread={"messages": [{"role": "user", "content": answer_at_any_length}]},
    )
    assert run.status == "completed", run.last_error
    (sent,) = [
        r["body"] for r in model_server.requests(SMALL_MODEL) if _last_user(r["body"]) == answer_at_any_length
    ]
    assert sent["max_tokens"] == 3072  # three quarters of the 4,096-token window
