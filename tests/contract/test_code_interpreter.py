"""Code interpreter through the official SDK: the model's code runs in the thread's Docker sandbox."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.conftest import ScriptedModel, Server, spawn, start_distributed, start_embedded, stop, unavailable
from tests.contract.test_streaming import TextSnapshots, streamed_annotations
from tests.contract.test_tools import strict_steps

IMAGE = "assistd-sandbox:1"


@pytest.fixture(scope="session", autouse=True)
def docker_ready() -> None:
    try:
        found = (
            subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        found = False
    if not found:
        unavailable(f"a Docker engine with the image {IMAGE}")


def code(call_id: str, source: str) -> dict[str, Any]:
    return {
        "tool_calls": [{"id": call_id, "name": "code_interpreter", "arguments": json.dumps({"code": source})}]
    }


def tutor(client: OpenAI, model_server: ScriptedModel, responses: list[dict[str, Any]], **kw: Any) -> Any:
    model = model_server.script(str(uuid.uuid4()), responses)
    return client.beta.assistants.create(
        name="Math Tutor",
        model=model,
        tools=[{"type": "code_interpreter"}],
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        **kw,
    )


def ask(client: OpenAI, assistant: Any, text: str, thread_id: str | None = None, **kw: Any) -> Any:
    if thread_id is None:
        thread_id = client.beta.threads.create().id
    client.beta.threads.messages.create(thread_id=thread_id, role="user", content=text, **kw)
    return client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id)


def code_calls(server: Server, run: Any) -> list[Any]:
    return [c for s in strict_steps(server, run) if s.type == "tool_calls" for c in s.step_details.tool_calls]


def test_math_tutor_quickstart(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    source = "from sympy import symbols, solve\nx = symbols('x')\nprint(solve(3*x + 11 - 14, x))"
    assistant = tutor(
        client, model_server, [code("call_solve", source), {"content": "The solution is x = 1."}]
    )
    run = ask(client, assistant, "I need to solve the equation `3x + 11 = 14`. Can you help me?")
    assert run.status == "completed", run.last_error
    (call,) = code_calls(server, run)
    assert call.type == "code_interpreter" and call.code_interpreter.input == source
    (logs,) = call.code_interpreter.outputs
    assert logs.type == "logs" and logs.logs.strip() == "[1]"
    # the model read the output back as the result of its call
    sent = model_server.requests(assistant.model)[-1]["body"]["messages"]
    assert (
        sent[-1]["role"] == "tool"
        and sent[-1]["tool_call_id"] == "call_solve"
        and "[1]" in sent[-1]["content"]
    )
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "code_interpreter"
    answer = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data[0]
    assert answer.content[0].text.value == "The solution is x = 1."
    assert run.usage.total_tokens > 0


def test_state_persists_across_runs(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant = tutor(
        client,
        model_server,
        [
            code("call_set", "import math\nanswer = 41"),
            {"content": "Stored."},
            code("call_get", "print(math.floor(answer + 1.5))"),
            {"content": "It is 42."},
        ],
    )
    first = ask(client, assistant, "Remember 41.")
    assert first.status == "completed", first.last_error
    second = ask(client, assistant, "Add one.", thread_id=first.thread_id)
    assert second.status == "completed", second.last_error
    (call,) = code_calls(server, second)
    assert call.code_interpreter.outputs[0].logs.strip() == "42"


def test_files_in_and_out(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    given = client.files.create(file=("numbers.csv", b"n\n1\n2\n3\n"), purpose="assistants")
    attached = client.files.create(file=("prices.csv", b"price\n10\n"), purpose="assistants")
    source = (
        "import pandas as pd\ndf = pd.read_csv('/mnt/data/numbers.csv')\n"
        "print(df.n.sum(), pd.read_csv('/mnt/data/prices.csv').price[0])\n"
        "df.assign(double=df.n * 2).to_csv('/mnt/data/doubled.csv', index=False)"
    )
    reply = "Done: [doubled.csv](sandbox:/mnt/data/doubled.csv), also at sandbox:/mnt/data/doubled.csv."
    assistant = tutor(
        client,
        model_server,
        [code("call_csv", source), {"content": reply}],
        tool_resources={"code_interpreter": {"file_ids": [given.id]}},
    )
    run = ask(
        client,
        assistant,
        "Double the numbers.",
        attachments=[{"file_id": attached.id, "tools": [{"type": "code_interpreter"}]}],
    )
    assert run.status == "completed", run.last_error
    (call,) = code_calls(server, run)
    assert call.code_interpreter.outputs[0].logs.startswith("6 10")
    answer = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data[0]
    text = answer.content[-1].text
    link, again = text.annotations  # the second link ends a sentence: its full stop is not part of it
    for a in (link, again):
        assert (
            a.type == "file_path"
            and text.value[a.start_index : a.end_index] == "sandbox:/mnt/data/doubled.csv"
        )
    assert again.file_path.file_id == link.file_path.file_id
    out = client.files.retrieve(link.file_path.file_id)
    assert out.purpose == "assistants_output" and out.filename == "/mnt/data/doubled.csv"
    assert client.files.content(out.id).content.decode().split() == ["n,double", "1,2", "2,4", "3,6"]


def test_plot_becomes_image_file(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    source = (
        "import matplotlib.pyplot as plt\nplt.plot([0, 1, 2], [0, 1, 4])\nplt.title('squares')\nplt.show()"
    )
    assistant = tutor(client, model_server, [code("call_plot", source), {"content": "Here is the plot."}])
    run = ask(client, assistant, "Plot some squares.")
    assert run.status == "completed", run.last_error
    (call,) = code_calls(server, run)
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    png = client.files.content(images[0].image.file_id).content
    assert png.startswith(b"\x89PNG")
    answer = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data[0]
    assert [p.type for p in answer.content] == ["image_file", "text"]
    assert answer.content[0].image_file.file_id == images[0].image.file_id


def test_errors_go_back_to_the_model(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant = tutor(client, model_server, [code("call_bad", "1 / 0"), {"content": "Division by zero."}])
    run = ask(client, assistant, "Divide by zero.")
    assert run.status == "completed", run.last_error
    (call,) = code_calls(server, run)
    assert "ZeroDivisionError" in call.code_interpreter.outputs[0].logs
    sent = model_server.requests(assistant.model)[-1]["body"]["messages"]
    assert "ZeroDivisionError" in sent[-1]["content"]


def test_streamed_code_interpreter_run(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant = tutor(
        client, model_server, [code("call_sum", "print(sum(range(10)))"), {"content": "45 it is."}]
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum 0..9"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = list(stream)
        final = stream.get_final_run()
    names = [e.event for e in events]
    assert final.status == "completed" and names[-1] == "thread.run.completed"
    deltas = [e.data.delta.step_details.tool_calls[0] for e in events if e.event == "thread.run.step.delta"]
    assert deltas and all(d.type == "code_interpreter" and d.index == 0 for d in deltas)
    assert "".join(d.code_interpreter.input or "" for d in deltas) == "print(sum(range(10)))"
    assert [o.logs for d in deltas for o in d.code_interpreter.outputs or []] == ["45\n"]
    done = [e.data for e in events if e.event == "thread.run.step.completed" and e.data.type == "tool_calls"]
    assert done[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs.strip() == "45"
    text = [e.data.content[0].text.value for e in events if e.event == "thread.message.completed"]
    assert text == ["45 it is."]


def test_streamed_answer_links_its_file_in_a_delta(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    source = "open('/mnt/data/out.txt', 'w').write('saved')"
    reply = "Saved to [out.txt](sandbox:/mnt/data/out.txt)."
    assistant = tutor(client, model_server, [code("call_out", source), {"content": reply}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Save a file."}])
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=TextSnapshots()
    ) as stream:
        stream.until_done()
        (message,) = stream.get_final_messages()
    text = message.content[-1].text
    assert text.value == reply
    (link,) = streamed_annotations(stream, text)
    assert (
        link.type == "file_path" and reply[link.start_index : link.end_index] == "sandbox:/mnt/data/out.txt"
    )
    assert client.files.retrieve(link.file_path.file_id).filename == "/mnt/data/out.txt"


def test_forcing_code_interpreter(server: Server, client: OpenAI, model_server: ScriptedModel) -> None:
    assistant = tutor(client, model_server, [code("call_f", "print(2 ** 10)"), {"content": "1024"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "2^10?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice={"type": "code_interpreter"}
    )
    assert run.status == "completed", run.last_error
    sent = model_server.requests(assistant.model)[0]["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "code_interpreter"}}


def test_missing_image_fails_the_run(model_server: ScriptedModel, tmp_path: Path) -> None:
    """A worker that cannot run code fails the run with last_error; it never runs code on the host."""
    server = start_embedded(model_server, tmp_path, extra={"ASSISTD_SANDBOX_IMAGE": "assistd-sandbox:absent"})
    try:
        client = server.client()
        assistant = tutor(client, model_server, [code("call_x", "print(1)")])
        run = ask(client, assistant, "Run it.")
        assert run.status == "failed"
        assert run.last_error.code == "server_error" and "assistd-sandbox:absent" in run.last_error.message
    finally:
        stop(server.procs)


def test_worker_killed_mid_execution(model_server: ScriptedModel, tmp_path: Path) -> None:
    """The worker dies while the code runs: another worker finishes the run, exactly once."""
    server = start_distributed(model_server, tmp_path, workers=1)
    try:
        client = server.client()
        source = "import time\ntime.sleep(3)\nprint('slept')"
        assistant = tutor(
            client, model_server, [code("call_a", source), code("call_b", source), {"content": "Slept well."}]
        )
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sleep."}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        deadline = time.time() + 30
        while not model_server.requests(assistant.model) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the code is running now

        server.procs[1].send_signal(signal.SIGKILL)
        server.procs[1].wait()
        server.procs.append(
            spawn([sys.executable, "-m", "assistd", "worker"], server.env, tmp_path / "w2.log")
        )
        done = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=100)
        assert done.status == "completed", done.last_error
        messages = client.beta.threads.messages.list(thread_id=thread.id)
        assert [m.role for m in messages] == ["assistant", "user"]
        (call,) = code_calls(server, done)  # the dead attempt recorded nothing
        assert call.id == "call_b", call.id
        assert call.code_interpreter.outputs[0].logs.strip().endswith("slept"), call.code_interpreter.outputs
    finally:
        stop(server.procs)


def test_streamed_mixed_round_with_the_event_handler(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    """Code and a function in one streamed round: the SDK's handler sees both calls, the code's
    logs, then the function's requires_action; the plot drawn opens the final message."""
    from openai import AssistantEventHandler

    weather = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nprint('drawn')"
    model = model_server.script(
        str(uuid.uuid4()),
        [
            {
                "tool_calls": [
                    {"id": "call_c", "name": "code_interpreter", "arguments": json.dumps({"code": plot})},
                    {"id": "call_w", "name": "get_weather", "arguments": "{}"},
                ]
            },
            {"content": "Sunny, and here is the plot."},
        ],
    )
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}, weather])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather and a plot"}])

    class Seen(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.created: list[str] = []
            self.done: list[Any] = []
            self.texts: list[str] = []

        def on_tool_call_created(self, tool_call: Any) -> None:
            self.created.append(tool_call.type)

        def on_tool_call_done(self, tool_call: Any) -> None:
            self.done.append(tool_call)

        def on_text_done(self, text: Any) -> None:
            self.texts.append(text.value)

    first = Seen()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=first
    ) as s:
        s.until_done()
    run = first.current_run
    assert run is not None and run.status == "requires_action"
    assert first.created == ["function", "code_interpreter"]  # a step lists function calls first
    code_call = next(c for c in first.done if c.type == "code_interpreter")
    assert code_call.code_interpreter.input == plot and "drawn" in code_call.code_interpreter.outputs[0].logs
    assert [c.id for c in run.required_action.submit_tool_outputs.tool_calls] == ["call_w"]
    second = Seen()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": "call_w", "output": "sunny"}],
        event_handler=second,
    ) as s:
        s.until_done()
    assert second.current_run is not None and second.current_run.status == "completed"
    assert second.texts == ["Sunny, and here is the plot."]
    (message,) = second.get_final_messages()
    assert [p.type for p in message.content] == ["image_file", "text"]


def test_a_function_cannot_shadow_the_tool(client: OpenAI) -> None:
    from openai import BadRequestError

    shadow = {"type": "function", "function": {"name": "code_interpreter", "parameters": {"type": "object"}}}
    with pytest.raises(BadRequestError) as caught:
        client.beta.assistants.create(model="echo", tools=[{"type": "code_interpreter"}, shadow])
    assert caught.value.body["param"] == "tools" and "code_interpreter" in caught.value.body["message"]
