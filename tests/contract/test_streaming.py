"""Streaming runs through the SDK's stream helpers and as raw server-sent events."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import httpx
from openai import AssistantEventHandler, OpenAI
from typing_extensions import override

from tests.conftest import KEY_A, ScriptedModel, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
START = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
MESSAGE_OPEN = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.deltas: list[str] = []
        self.arguments: list[str] = []

    @override
    def on_event(self, event: Any) -> None:
        self.names.append(event.event)
        if event.event == "thread.message.delta":
            self.deltas.append(event.data.delta.content[0].text.value)
        if event.event == "thread.run.step.delta":
            self.arguments += [c.function.arguments or "" for c in event.data.delta.step_details.tool_calls]


class TextSnapshots(AssistantEventHandler):
    """Each text delta as sent, and the text as the SDK's accumulation made it after the last."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[Any] = []
        self.snapshot: Any = None

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.deltas.append(delta)
        self.snapshot = snapshot


def _shape(annotation: Any) -> tuple[Any, ...]:
    cited = annotation.file_citation if annotation.type == "file_citation" else annotation.file_path
    return annotation.type, annotation.text, annotation.start_index, annotation.end_index, cited.file_id


def streamed_annotations(handler: TextSnapshots, final: Any) -> list[Any]:
    """The annotation deltas of a streamed message whose completed text is `final`, checked: the
    deltas add up to its text, no more, and the SDK's accumulated text ends with its annotations."""
    assert "".join(d.value or "" for d in handler.deltas) == final.value
    sent = [a for d in handler.deltas for a in d.annotations or []]
    assert [a.index for a in sent] == list(range(len(final.annotations)))
    assert [_shape(a) for a in sent] == [_shape(a) for a in final.annotations]
    assert handler.snapshot.value == final.value
    assert [_shape(a) for a in handler.snapshot.annotations] == [_shape(a) for a in final.annotations]
    return sent


def squash(names: list[str]) -> list[str]:
    """Event names with runs of deltas collapsed to one."""
    return [n for i, n in enumerate(names) if not (n.endswith(".delta") and i and names[i - 1] == n)]


def test_plain_run_stream(client: OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stream these words please"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as s:
        s.until_done()
    assert squash(handler.names) == START + MESSAGE_OPEN + [
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    stored = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert "".join(handler.deltas) == stored.content[0].text.value == "You said: stream these words please"
    assert len(handler.deltas) == 6  # one per word
    run = handler.current_run
    assert run is not None and run.status == "completed" and run.usage is not None


def test_create_and_run_stream(client: OpenAI, assistant: Any) -> None:
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        event_handler=handler,
    ) as s:
        s.until_done()
    assert handler.names[0] == "thread.created" and handler.names[-1] == "thread.run.completed"


def test_tool_calls_and_submit_stream(client: OpenAI, model_server: ScriptedModel) -> None:
    model = model_server.script(
        str(uuid.uuid4()),
        [
            {
                "tool_calls": [
                    {"id": "call_s", "name": "get_weather", "arguments": '{"city": "Paris, France"}'}
                ]
            },
            {"content": "Sunny.", "expect_tool_results": [["call_s", "sun"]]},
        ],
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    first = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=first
    ) as s:
        s.until_done()
    assert squash(first.names) == START + [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    assert "".join(first.arguments) == '{"city": "Paris, France"}'
    run = first.current_run
    assert (
        run.status == "requires_action"
        and run.required_action.submit_tool_outputs.tool_calls[0].id == "call_s"
    )
    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "call_s", "output": "sun"}],
        event_handler=second,
    ) as s:
        s.until_done()
    assert squash(second.names) == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
    ] + MESSAGE_OPEN + [
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert "".join(second.deltas) == "Sunny."


def test_failed_and_incomplete_streams(client: OpenAI, assistant: Any) -> None:
    for model, last in (("error:500", "thread.run.failed"), ("length", "thread.run.incomplete")):
        handler = Recorder()
        with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id,
            model=model,
            max_completion_tokens=5,
            thread={"messages": [{"role": "user", "content": "x"}]},
            event_handler=handler,
        ) as s:
            s.until_done()
        assert handler.names[-1] == last, handler.names
        if model == "length":
            assert "thread.message.incomplete" in handler.names


def test_cancelled_stream(server: Server, client: OpenAI, assistant: Any) -> None:
    handler = Recorder()
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow"}])

    def cancel_soon() -> None:
        other = server.client()
        deadline = time.time() + 10
        while time.time() < deadline:
            if "thread.message.delta" in handler.names:  # the model is half-way through its answer
                run_id = other.beta.threads.runs.list(thread_id=thread.id).data[0].id
                other.beta.threads.runs.cancel(run_id, thread_id=thread.id)
                return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, model="pause:20000", event_handler=handler
    ) as s:
        s.until_done()
    canceller.join()
    assert handler.names[-3:] == [
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
    ]
    # announced once the cancel is asked for; a delta the worker had on its way may still follow
    cancelling = handler.names.index("thread.run.cancelling")
    assert set(handler.names[cancelling + 1 : -3]) <= {"thread.message.delta"}, handler.names
    assert [m.role for m in client.beta.threads.messages.list(thread_id=thread.id).data] == ["user"]


def test_disconnecting_client_does_not_stop_the_run(server: Server, client: OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "keep going"}])
    body = {"assistant_id": assistant.id, "stream": True, "model": "pause:500"}
    with httpx.stream(
        "POST",
        f"{server.url}/v1/threads/{thread.id}/runs",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {KEY_A}"},
    ) as resp:
        for line in resp.iter_lines():
            if line == "event: thread.message.delta":
                break  # leave after the first token
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert client.beta.threads.runs.poll(run.id, thread_id=thread.id).status == "completed"
    assert (
        client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value
        == "You said: keep going"
    )


def test_raw_server_sent_events(server: Server, assistant: Any) -> None:
    body = {
        "assistant_id": assistant.id,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "a b"}]},
    }
    with httpx.stream(
        "POST",
        f"{server.url}/v1/threads/runs",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {KEY_A}"},
    ) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line and not line.startswith(":")]
    events = [lines[i : i + 2] for i in range(0, len(lines), 2)]
    assert all(e[0].startswith("event: ") and e[1].startswith("data: ") for e in events)
    assert events[-1] == ["event: done", "data: [DONE]"]
    for name_line, data_line in events[:-1]:
        data = json.loads(data_line.removeprefix("data: "))
        assert "event" not in data and isinstance(data, dict) and "id" in data
    assert events[0][0] == "event: thread.created" and events[-2][0] == "event: thread.run.completed"
