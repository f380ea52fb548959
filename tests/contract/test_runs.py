"""Runs through the queue: lifecycle, overrides, limits, failures, cancel, steps."""

import time
import uuid
from typing import Any, get_args

import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from openai.types.shared import ReasoningEffort

from tests.conftest import KEY_B, ScriptedModel, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


def _thread(client: OpenAI, text: str) -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": text}])


def test_run_lifecycle_and_steps(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "lifecycle")
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, metadata={"m": "1"})
    assert run.status == "queued" and run.id.startswith("run_") and run.expires_at
    assert run.model == "echo" and run.instructions == assistant.instructions and run.tool_choice == "auto"
    assert run.truncation_strategy.type == "auto" and run.parallel_tool_calls is True
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert run.status == "completed" and run.metadata == {"m": "1"}
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert len(steps.data) == 1
    step = steps.data[0]
    assert step.type == "message_creation" and step.status == "completed" and step.id.startswith("step_")
    assert step.usage is not None and step.usage.total_tokens == run.usage.total_tokens
    got = client.beta.threads.runs.steps.retrieve(
        step.id,
        thread_id=thread.id,
        run_id=run.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    msg = client.beta.threads.messages.retrieve(
        got.step_details.message_creation.message_id, thread_id=thread.id
    )
    assert msg.run_id == run.id and msg.content[0].text.value == "You said: lifecycle"
    assert [m.id for m in client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)] == [msg.id]
    assert client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"m": "2"}).metadata == {
        "m": "2"
    }
    assert [r.id for r in client.beta.threads.runs.list(thread_id=thread.id)] == [run.id]
    with pytest.raises(NotFoundError):
        client.beta.threads.runs.retrieve("run_nope", thread_id=thread.id)


def test_create_thread_and_run(client: OpenAI, assistant: Any) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "combined"}]}
    )
    assert run.status == "completed"
    msgs = client.beta.threads.messages.list(thread_id=run.thread_id)
    assert msgs.data[0].content[0].text.value == "You said: combined"
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.id == run.thread_id and [m.role for m in msgs.data] == ["assistant", "user"]


def test_create_thread_and_run_refused(server: Server, client: OpenAI, assistant: Any) -> None:
    """An unknown assistant, another project's, or a tool_choice naming no tool: OpenAI's errors."""
    with pytest.raises(NotFoundError):
        client.beta.threads.create_and_run(
            assistant_id="asst_missing", thread={"messages": [{"role": "user", "content": "lost"}]}
        )
    with pytest.raises(NotFoundError):
        server.client(KEY_B).beta.threads.create_and_run(assistant_id=assistant.id)
    with pytest.raises(BadRequestError):
        client.beta.threads.create_and_run(
            assistant_id=assistant.id, tool_choice={"type": "function", "function": {"name": "nope"}}
        )


def test_prompt_is_built_from_run_settings(
    client: OpenAI, assistant: Any, model_server: ScriptedModel
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"old {i}"} for i in range(5)])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="text:prompt-check",
        additional_instructions="Be brief.",
        additional_messages=[{"role": "user", "content": "extra"}],
        temperature=0.3,
        top_p=0.8,
        max_completion_tokens=500,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    )
    assert run.status == "completed"
    sent = [
        r
        for r in model_server.requests("text:prompt-check")
        if any(m["content"] == "extra" for m in r["body"]["messages"])
    ][-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "You are a test assistant.\n\nBe brief."}
    assert [m["content"] for m in sent["messages"][1:]] == ["old 4", "extra"]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.8 and sent["max_completion_tokens"] == 500
    assert sent["response_format"]["type"] == "json_schema"
    texts = [
        m.content[0].text.value for m in client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    ]
    assert texts[-2:] == ["extra", "prompt-check"]


def test_one_active_run_per_thread(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "busy")
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model="slow:1500")
    with pytest.raises(BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.id in info.value.message
    with pytest.raises(BadRequestError):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="not now")
    assert client.beta.threads.runs.poll(run.id, thread_id=thread.id).status == "completed"
    assert len(client.beta.threads.runs.list(thread_id=thread.id).data) == 1


def test_bad_run_requests(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "x")
    with pytest.raises(NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope")
    with pytest.raises(BadRequestError) as info:
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, tool_choice="sometimes"
        )  # type: ignore[arg-type]
    assert info.value.body["param"].startswith("tool_choice")
    with pytest.raises(BadRequestError):
        client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            truncation_strategy={"type": "last_messages", "last_messages": 0},
        )
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


@pytest.mark.parametrize(
    ("model", "code"),
    [("error:429", "rate_limit_exceeded"), ("error:400", "invalid_prompt"), ("error:503", "server_error")],
)
def test_model_errors_fail_the_run(client: OpenAI, assistant: Any, model: str, code: str) -> None:
    thread = _thread(client, f"fail {model}")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, model=model
    )
    assert run.status == "failed" and run.failed_at and run.last_error is not None
    assert run.last_error.code == code and run.last_error.message
    assert [m.role for m in client.beta.threads.messages.list(thread_id=thread.id)] == ["user"]


def test_transient_errors_are_retried(client: OpenAI, assistant: Any, model_server: ScriptedModel) -> None:
    text = f"flaky once {uuid.uuid4()}"  # the script counts failures per message text
    thread = _thread(client, text)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, model="flaky:1"
    )
    assert run.status == "completed"
    assert (
        len([r for r in model_server.requests("flaky:1") if r["body"]["messages"][-1]["content"] == text])
        == 2
    )


def test_completion_token_limit_makes_run_incomplete(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "long story")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, model="length", max_completion_tokens=20
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    msg = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert msg.status == "incomplete" and msg.incomplete_details.reason == "max_tokens"


def test_prompt_token_limit_makes_run_incomplete(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "word " * 400)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=50
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"


def test_prompt_budget_counts_the_models_tokens(client: OpenAI, assistant: Any) -> None:
    """'word ' * 400 is 401 tokens in o200k_base (gpt-4o's encoding) and about 501 by the
    four-characters estimate: a budget of 470 holds it for gpt-4o only."""
    for model, status in (("gpt-4o", "completed"), ("echo", "incomplete")):
        thread = _thread(client, "word " * 400)
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, model=model, max_prompt_tokens=470
        )
        assert (model, run.status) == (model, status)


def test_cancel_in_progress_run(client: OpenAI, assistant: Any) -> None:
    thread = _thread(client, "cancel me")
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model="slow:20000")
    deadline = time.time() + 10
    while (
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "queued"
        and time.time() < deadline
    ):
        time.sleep(0.05)
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    started = time.time()
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert done.status == "cancelled" and done.cancelled_at and time.time() - started < 5
    assert [m.role for m in client.beta.threads.messages.list(thread_id=thread.id)] == ["user"]
    with pytest.raises(BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    # the thread is free again
    assert (
        client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id).status
        == "completed"
    )


def test_many_runs_each_one_message(client: OpenAI, assistant: Any) -> None:
    runs = [
        client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": f"n{i}"}]}
        )
        for i in range(20)
    ]
    for run in runs:
        done = client.beta.threads.runs.poll(run.id, thread_id=run.thread_id)
        assert done.status == "completed"
        msgs = client.beta.threads.messages.list(thread_id=run.thread_id)
        assert [m.role for m in msgs.data] == ["assistant", "user"]


POLL_HELPER = {"X-Stainless-Poll-Helper": "true"}


def test_a_poll_helpers_retrieve_is_answered_when_the_run_ends(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="slow:800")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    # a plain retrieve answers at once
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status in ("queued", "in_progress")
    started = time.monotonic()
    polled = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id, extra_headers=POLL_HELPER)
    assert polled.status == "completed" and time.monotonic() - started >= 0.4
    # create_and_poll: one poll, answered as the run ends
    began = time.monotonic()
    done = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert done.status == "completed" and 0.75 <= time.monotonic() - began < 2.5


def test_a_poll_helper_hears_of_requires_action_and_a_cancel(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    call = {"id": "call_poll", "name": "lookup", "arguments": "{}"}
    model = model_server.script(str(uuid.uuid4()), [{"tool_calls": [call]}])
    tool: Any = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assistant = client.beta.assistants.create(model=model, tools=[tool])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "look it up"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    slow = client.beta.assistants.create(model="slow:3000")
    other = client.beta.threads.create(messages=[{"role": "user", "content": "wait"}])
    going = client.beta.threads.runs.create(thread_id=other.id, assistant_id=slow.id)
    time.sleep(0.3)
    client.beta.threads.runs.cancel(going.id, thread_id=other.id)
    started = time.monotonic()
    polled = client.beta.threads.runs.retrieve(going.id, thread_id=other.id, extra_headers=POLL_HELPER)
    assert polled.status == "cancelled" and time.monotonic() - started < 2.5


def test_every_reasoning_effort_the_sdk_declares_reaches_the_model(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    # the assistant's effort, then a run's own, "max" the newest of the SDK's values
    model = f"text:effort-{uuid.uuid4().hex[:8]}"
    assistant = client.beta.assistants.create(model=model, reasoning_effort="max")
    thread = _thread(client, "think hard")
    first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert first.status == "completed"
    assert [r["body"]["reasoning_effort"] for r in model_server.requests(model)] == ["max"]
    efforts = [e for e in get_args(get_args(ReasoningEffort)[0]) if e != "max"]
    for effort in efforts:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, reasoning_effort=effort
        )
        assert run.status == "completed"
    assert [r["body"]["reasoning_effort"] for r in model_server.requests(model)] == ["max", *efforts]
