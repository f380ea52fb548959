"""Assistd in front of a real inference server: llama-cpp-python's, with SmolLM2-135M-Instruct.

`.ci/llama.sh` installs the server into a venv of its own (ASSISTD_LLAMA_VENV, /opt/assistd-llama).
A recording proxy (tests/model_proxy.py) sits between Assistd and the server, so the tests can
see what went over the wire, and cut a real stream short. The assertions are about the protocol
(statuses, ids, what was sent and accepted), never about the model's wisdom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import CI, ScriptedModel, Server, start_distributed, start_embedded, stop
from tests.contract.test_inference_quirks import Calls
from tests.procs import free_port, spawn, wait_http

VENV = Path(os.environ.get("ASSISTD_LLAMA_VENV", "/opt/assistd-llama"))
MODEL = "smollm2"  # any name: the server answers with the one model it loaded
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
INSTRUCTIONS = "You are a helpful assistant. Answer in one short sentence."


class Proxy:
    def __init__(self, url: str) -> None:
        self.url = url

    def requests(self) -> list[dict[str, Any]]:
        return [
            r
            for r in httpx.get(f"{self.url}/_requests", timeout=10).json()
            if r["path"].endswith("/completions")
        ]

    def of(self, text: str) -> list[dict[str, Any]]:
        """The chat requests whose messages mention `text`."""
        return [r for r in self.requests() if text in json.dumps(r["body"]["messages"])]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    model_path = VENV / "model-path"
    if not model_path.exists():
        if CI:
            pytest.fail(f"the llama.cpp server is not installed in {VENV}; .ci/run must run .ci/llama.sh")
        pytest.skip(f"the llama.cpp server is not installed in {VENV} (bash .ci/llama.sh)")
    tmp = tmp_path_factory.mktemp("llama")
    port = free_port()
    args = [
        str(VENV / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        "--model",
        model_path.read_text().strip(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chat_format",
        "chatml-function-calling",
        # one request at a time: by default a new request cuts a running stream short
        "--n_ctx",
        "4096",
        "--n_threads",
        "1",
        "--interrupt_requests",
        "False",
        "--verbose",
        "False",
    ]
    with open(tmp / "llama.log", "wb") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    procs = [server]
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", server, timeout=120)
        proxy_port = free_port()
        procs.append(
            spawn(
                [
                    sys.executable,
                    "-m",
                    "tests.model_proxy",
                    "--upstream",
                    f"http://127.0.0.1:{port}",
                    "--port",
                    str(proxy_port),
                ],
                {},
                tmp / "proxy.log",
            )
        )
        wait_http(f"http://127.0.0.1:{proxy_port}/_requests", procs[-1])
        yield Proxy(f"http://127.0.0.1:{proxy_port}")
    finally:
        stop(procs)


def endpoints(proxy: Proxy) -> dict[str, str]:
    """The options README.md gives for llama.cpp: its window, and the one token limit it reads."""
    llama = {"base_url": f"{proxy.url}/v1", "context_window": 4096, "token_limit_field": "max_tokens"}
    short = llama | {"max_output_tokens": 48}  # quick answers for the tests that need no room
    return {
        "ASSISTD_MODEL_ENDPOINTS": json.dumps({MODEL: short, f"{MODEL}@cut": short, f"{MODEL}-room": llama}),
        "ASSISTD_MODEL_TIMEOUT_SECONDS": "300",
        "ASSISTD_RUN_TIMEOUT_SECONDS": "900",
    }


@pytest.fixture(scope="module", params=["embedded", "distributed"])
def assistd(
    request: pytest.FixtureRequest,
    llama: Proxy,
    model_server: ScriptedModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    start = start_embedded if request.param == "embedded" else start_distributed
    server = start(model_server, tmp_path_factory.mktemp(f"llama-{request.param}"), extra=endpoints(llama))
    yield server
    stop(server.procs)


@pytest.fixture
def client(assistd: Server) -> OpenAI:
    return assistd.client(timeout=300)


def tagged(text: str) -> str:
    """A user text of this test's own: both modes' servers share one proxy."""
    return f"{text} (ref {uuid.uuid4().hex[:6]})"


def ask(client: OpenAI, text: str, model: str = MODEL, **run: Any) -> Any:
    assistant = client.beta.assistants.create(
        model=model, instructions=INSTRUCTIONS, tools=run.pop("tools", [])
    )
    return client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": text}]}, **run
    )


def test_quickstart(client: OpenAI, llama: Proxy) -> None:
    text = tagged("Say hello to Jane.")
    run = ask(client, text)
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.usage is not None and run.usage.prompt_tokens > 0  # a plain answer carries real counts
    (sent,) = llama.of(text)
    assert sent["status"] == 200 and sent["body"]["max_tokens"] == 48
    messages = client.beta.threads.messages.list(thread_id=run.thread_id).data
    assert [m.role for m in messages] == ["assistant", "user"]


def test_streamed_run_has_deltas_and_honest_usage(client: OpenAI, llama: Proxy) -> None:
    assistant = client.beta.assistants.create(model=MODEL, instructions=INSTRUCTIONS)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Name a colour."}])
    deltas: list[str] = []
    # bounded: a 135M model may talk until its limit, at a few tokens a second on a busy machine
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=128
    ) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                deltas.append(event.data.delta.content[0].text.value)  # type: ignore[union-attr, index]
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status in ("completed", "incomplete"), run.last_error
    stored = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert deltas and "".join(deltas) == stored.content[0].text.value  # type: ignore[union-attr]
    assert run.usage is None  # this server sends no usage chunk: unknown, never 0/0/0


def test_forced_function_round_trip(client: OpenAI, llama: Proxy) -> None:
    text = tagged("What is the weather in Paris?")
    run = ask(client, text, tools=[WEATHER], tool_choice=FORCED)
    assert run.status == "requires_action", run.last_error
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "Sunny, 21 C"}],
    )
    first, second = llama.of(text)
    assert first["body"]["tool_choice"] == FORCED and second["body"]["tool_choice"] == "auto"
    replayed = [m for m in second["body"]["messages"] if m.get("tool_calls")]
    assert replayed[0]["content"] == "" and second["status"] == 200  # null content was a 500 here
    # what the model does with the result is its own business; the run went on without being forced
    assert run.status in ("completed", "incomplete", "requires_action"), run.last_error


def test_streamed_tool_call_reaches_the_handler_once(client: OpenAI) -> None:
    """This server repeats the call's id and name in every chunk."""
    assistant = client.beta.assistants.create(model=MODEL, instructions=INSTRUCTIONS, tools=[WEATHER])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    handler = Calls()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice=FORCED,  # type: ignore[arg-type]
        event_handler=handler,
    ) as stream:
        stream.until_done()
    run = handler.current_run
    assert run is not None and run.status == "requires_action", run and run.last_error
    (call,) = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    (done,) = handler.done
    assert (done.id, done.function.name) == (call.id, "get_weather")  # type: ignore[union-attr]
    assert json.loads(done.function.arguments) == json.loads(call.function.arguments)  # type: ignore[union-attr]


def test_forced_code_interpreter_runs_in_the_sandbox(client: OpenAI) -> None:
    """The forced call runs in the sandbox. What the model does next (a small model may call the
    tool round after round) is not the test's business: the run is cancelled once the call ran."""
    assistant = client.beta.assistants.create(
        model=MODEL, instructions=INSTRUCTIONS, tools=[{"type": "code_interpreter"}]
    )
    run = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=96,
        thread={"messages": [{"role": "user", "content": "Compute 6 times 7 with Python."}]},
    )
    deadline = time.monotonic() + 240
    calls: list[Any] = []
    while not calls and time.monotonic() < deadline:
        steps = client.beta.threads.runs.steps.list(thread_id=run.thread_id, run_id=run.id, order="asc").data
        calls = [
            c
            for s in steps
            if s.step_details.type == "tool_calls" and s.status == "completed"
            for c in s.step_details.tool_calls
        ]  # type: ignore[union-attr]
        time.sleep(0.2)
    run = client.beta.threads.runs.retrieve(thread_id=run.thread_id, run_id=run.id)
    assert calls and calls[0].type == "code_interpreter", (run.status, run.last_error)
    executed = calls[0].code_interpreter
    assert isinstance(executed.input, str) and executed.outputs  # it ran, whatever the code was
    if run.status in ("queued", "in_progress"):
        client.beta.threads.runs.cancel(thread_id=run.thread_id, run_id=run.id)
        run = client.beta.threads.runs.poll(thread_id=run.thread_id, run_id=run.id)
    assert run.status in ("cancelled", "completed", "incomplete"), (run.status, run.last_error)


def test_long_thread_leaves_room_for_the_answer(client: OpenAI, llama: Proxy) -> None:
    assistant = client.beta.assistants.create(model=f"{MODEL}-room", instructions=INSTRUCTIONS)
    thread = client.beta.threads.create()
    for i in range(30):
        text = (
            f"Note {i}: the meeting about the garden project moved to room {i}, and everyone should bring "
            "their notes, a pencil and the plans for the new paths and the flower beds near the pond. "
        ) * 3
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=text)
    last = tagged("Reply with one word: ok.")
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content=last)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    (sent,) = llama.of(last)
    assert sent["status"] == 200 and sent["body"]["max_tokens"] == 1024  # a quarter of the window
    # a 135M model told to answer in one word may still talk until the limit: either way the answer
    # had its room, and the run ended cleanly
    ended = (run.status, run.incomplete_details.reason if run.incomplete_details else None)
    assert ended in (("completed", None), ("incomplete", "max_completion_tokens")), (ended, run.last_error)
    assert run.usage is not None and run.usage.prompt_tokens + 1024 <= 4096  # the room was really there


def test_a_cut_stream_fails_the_run(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model=f"{MODEL}@cut", instructions=INSTRUCTIONS)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me about rivers."}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status == "failed" and run.last_error is not None and run.last_error.code == "server_error"
    assert [m.role for m in client.beta.threads.messages.list(thread_id=thread.id).data] == ["user"]
