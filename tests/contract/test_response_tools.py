"""Built-in tools of the Responses API through the official SDK: code_interpreter in containers
(a real Docker engine) and file_search over the vector stores the Assistants API uses."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy import update

from core.containers import CONTAINERS
from core.db import sync_engine
from tests.conftest import ScriptedModel, Server, in_every_mode
from tests.contract.test_code_interpreter import code, docker_ready  # noqa: F401  (a fixture)

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


AUTO: Any = {"type": "code_interpreter", "container": {"type": "auto"}}
OUTPUTS: Any = ["code_interpreter_call.outputs"]


def scripted(model_server: ScriptedModel, responses: list[dict[str, Any]]) -> str:
    return model_server.script(str(uuid.uuid4()), responses)


def search(call_id: str, query: str) -> dict[str, Any]:
    return {"tool_calls": [{"id": call_id, "name": "file_search", "arguments": json.dumps({"query": query})}]}


def logs(call: Any) -> str:
    return "".join(o.logs for o in call.outputs or [] if o.type == "logs")


def test_a_response_runs_code_and_reports_the_value(client: OpenAI, model_server: ScriptedModel) -> None:
    model = scripted(model_server, [code("call_1", "print(6 * 7)"), {"content": "It is 42."}])
    response = client.responses.create(model=model, input="What is 6 times 7?", tools=[AUTO], include=OUTPUTS)
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.id.startswith("ci_")
    assert call.code == "print(6 * 7)" and call.status == "completed"
    assert call.container_id.startswith("cntr_") and logs(call).strip() == "42"
    assert message.type == "message" and response.output_text == "It is 42."
    sent = model_server.requests(model)[-1]["body"]["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "code_interpreter"
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42\n"}
    # the outputs are kept, and shown when asked for
    kept = client.responses.retrieve(response.id)
    assert kept.output[0].type == "code_interpreter_call" and kept.output[0].outputs is None
    again = client.responses.retrieve(response.id, include=OUTPUTS)
    assert again.output[0].type == "code_interpreter_call" and logs(again.output[0]).strip() == "42"
    container = client.containers.retrieve(call.container_id)
    assert container.status == "running"
    assert response.usage is not None and response.usage.total_tokens > 0


def test_state_is_kept_across_responses_that_share_a_container(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    model = scripted(
        model_server,
        [
            code("call_set", "import math\nanswer = 41"),
            {"content": "Stored."},
            code("call_get", "print(math.floor(answer + 1.5))"),
            {"content": "It is 42."},
            code("call_again", "print(answer)"),
            {"content": "Still 41."},
        ],
    )
    first = client.responses.create(model=model, input="Remember 41.", tools=[AUTO])
    assert first.status == "completed", first.error
    # `auto` on the same chain reuses the chain's container
    second = client.responses.create(
        model=model, input="Add one.", previous_response_id=first.id, tools=[AUTO], include=OUTPUTS
    )
    assert second.status == "completed", second.error
    assert second.output[0].container_id == first.output[0].container_id
    assert logs(second.output[0]).strip() == "42"
    # a container named by id: the same session
    named: Any = {"type": "code_interpreter", "container": first.output[0].container_id}
    third = client.responses.create(model=model, input="And now?", tools=[named], include=OUTPUTS)
    assert third.output[0].container_id == first.output[0].container_id
    assert logs(third.output[0]).strip() == "41"


def test_a_file_in_and_a_file_out_with_its_citation(client: OpenAI, model_server: ScriptedModel) -> None:
    given = client.files.create(file=("numbers.csv", b"n\n1\n2\n3\n"), purpose="user_data")
    source = (
        "import pandas as pd\ndf = pd.read_csv('/mnt/data/numbers.csv')\nprint(df.n.sum())\n"
        "df.assign(double=df.n * 2).to_csv('/mnt/data/doubled.csv', index=False)"
    )
    reply = "Done: [doubled.csv](sandbox:/mnt/data/doubled.csv)."
    model = scripted(model_server, [code("call_csv", source), {"content": reply}])
    tool: Any = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [given.id]}}
    response = client.responses.create(model=model, input="Double them.", tools=[tool], include=OUTPUTS)
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "code_interpreter_call" and logs(call).strip().startswith("6")
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text" and text.text == reply
    (citation,) = text.annotations
    assert citation.type == "container_file_citation" and citation.container_id == call.container_id
    assert citation.filename == "doubled.csv"
    assert reply[citation.start_index : citation.end_index] == "sandbox:/mnt/data/doubled.csv"
    content = client.containers.files.content.retrieve(citation.file_id, container_id=call.container_id)
    assert content.read() == b"n,double\n1,2\n2,4\n3,6\n"
    files = {f.path: f.source for f in client.containers.files.list(call.container_id)}
    assert files == {"/mnt/data/numbers.csv": "user", "/mnt/data/doubled.csv": "assistant"}


def test_a_figure_is_an_image_output(client: OpenAI, model_server: ScriptedModel) -> None:
    source = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"
    model = scripted(model_server, [code("call_plot", source), {"content": "Here it is."}])
    response = client.responses.create(model=model, input="Plot squares.", tools=[AUTO], include=OUTPUTS)
    assert response.status == "completed", response.error
    images = [o for o in response.output[0].outputs or [] if o.type == "image"]  # type: ignore[union-attr]
    assert len(images) == 1 and images[0].url.startswith("data:image/png;base64,")
    assert base64.b64decode(images[0].url.split(",", 1)[1]).startswith(b"\x89PNG")
    # the model is told a figure was shown, not sent its bytes
    assert "[image shown to the user]" in model_server.requests(model)[-1]["body"]["messages"][-1]["content"]


def test_file_search_with_filters_and_citations_on_a_store_runs_search_too(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    store = client.vector_stores.create(name="capitals")
    france = client.files.create(file=("france.md", b"Paris is the capital of France."), purpose="assistants")
    spain = client.files.create(file=("spain.md", b"Madrid is the capital of Spain."), purpose="assistants")
    for f, country in ((france, "fr"), (spain, "es")):
        done = client.vector_stores.files.create_and_poll(
            vector_store_id=store.id, file_id=f.id, attributes={"country": country}
        )
        assert done.status == "completed"
    reply = "Paris is the capital【0:0†france.md】."
    model = scripted(model_server, [search("call_s", "capital city"), {"content": reply}])
    tool: Any = {
        "type": "file_search",
        "vector_store_ids": [store.id],
        "filters": {"type": "eq", "key": "country", "value": "fr"},
        "max_num_results": 5,
    }
    response = client.responses.create(
        model=model, input="What is the capital?", tools=[tool], include=["file_search_call.results"]
    )
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "file_search_call" and call.id.startswith("fs_") and call.status == "completed"
    assert call.queries == ["capital city"]
    assert call.results and {r.file_id for r in call.results} == {france.id}  # Spain is filtered out
    assert call.results[0].filename == "france.md" and "Paris" in (call.results[0].text or "")
    assert call.results[0].attributes == {"country": "fr"}
    # the model read numbered excerpts, and its marker became a citation where it stood
    assert "【0:0†france.md】" in model_server.requests(model)[-1]["body"]["messages"][-1]["content"]
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text" and text.text == "Paris is the capital."
    assert [a.model_dump() for a in text.annotations] == [
        {
            "type": "file_citation",
            "file_id": france.id,
            "filename": "france.md",
            "index": len("Paris is the capital"),
        }
    ]
    assert client.responses.retrieve(response.id).output[0].results is None  # type: ignore[union-attr]
    # the Assistants API searches the same store
    run_model = scripted(model_server, [search("call_r", "capital city"), {"content": "Madrid or Paris."}])
    assistant = client.beta.assistants.create(
        model=run_model,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Capitals?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(
        run_id=run.id,
        thread_id=thread.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    found = {
        r.file_id
        for s in steps
        if s.step_details.type == "tool_calls"
        for c in s.step_details.tool_calls
        if c.type == "file_search"
        for r in c.file_search.results or []
    }
    assert found == {france.id, spain.id}


def test_an_expired_container_is_a_lost_session_and_the_response_goes_on(
    server: Server, client: OpenAI, model_server: ScriptedModel
) -> None:
    container = client.containers.create(
        name="short", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    engine = sync_engine(server.env["ASSISTD_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            aged = (
                update(CONTAINERS)
                .where(CONTAINERS.c.id == container.id)
                .values(last_active_at=time.time() - 120)
            )
            conn.execute(aged)
    finally:
        engine.dispose()
    assert client.containers.retrieve(container.id).status == "expired"
    model = scripted(model_server, [code("call_x", "print(1)"), {"content": "The session was lost."}])
    tool: Any = {"type": "code_interpreter", "container": container.id}
    response = client.responses.create(model=model, input="Run it.", tools=[tool], include=OUTPUTS)
    assert response.status == "completed", response.error
    call = response.output[0]
    assert call.type == "code_interpreter_call" and call.status == "failed"
    assert "expired" in logs(call)
    told = model_server.requests(model)[-1]["body"]["messages"][-1]
    assert told["role"] == "tool" and "expired" in told["content"]
    assert response.output_text == "The session was lost."


def running(container: str) -> bool:
    """Whether the Docker engine still runs this container (by id or short id)."""
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return state.returncode == 0 and state.stdout.strip() == "true"


def test_a_deleted_containers_sandbox_ends_within_seconds(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    # (it was kept until idle: 20 minutes of a sandbox nobody could use again)
    model = scripted(
        model_server, [code("call_h", "import socket\nprint(socket.gethostname())"), {"content": "Here."}]
    )
    container = client.containers.create(name="brief")
    tool: Any = {"type": "code_interpreter", "container": container.id}
    response = client.responses.create(model=model, input="Where am I?", tools=[tool], include=OUTPUTS)
    assert response.status == "completed", response.error
    sandbox = logs(response.output[0]).strip()  # Docker names a container's host by its short id
    assert running(sandbox)
    client.containers.delete(container.id)
    deadline = time.monotonic() + 30
    while running(sandbox) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not running(sandbox)


HOSTILE = [
    ("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)", "unreachable"),
    ("import os\nwhile True:\n    os.fork()", "Resource temporarily unavailable"),
    ("open('/etc/shadow').read()", "PermissionError"),
    ("open('/opt/evil', 'w')", "Read-only file system|Permission denied"),
    ("import os\nos.setuid(0)", "PermissionError"),
    ("import os\nprint(os.getuid(), os.path.exists('/var/run/docker.sock'))", "1000 False"),
    (
        "with open('/mnt/data/big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * (1 << 20))",
        "No space left on device",
    ),
]


def test_hostile_code_is_contained_in_a_response_container(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    steps: list[dict[str, Any]] = []
    for n, (source, _) in enumerate(HOSTILE):
        steps += [code(f"call_{n}", source), {"content": f"step {n}"}]
    steps += [code("call_ok", "print('still here')"), {"content": "done"}]
    model = scripted(model_server, steps)
    previous = None
    for n, (_, expected) in enumerate([*HOSTILE, ("", "still here")]):
        response = client.responses.create(
            model=model, input=f"step {n}", tools=[AUTO], include=OUTPUTS, previous_response_id=previous
        )
        assert response.status == "completed", response.error
        out = logs(response.output[0])
        assert any(e in out for e in expected.split("|")), (n, out)
        previous = response.id


def test_streamed_tool_events_in_order(client: OpenAI, model_server: ScriptedModel) -> None:
    store = client.vector_stores.create(name="notes")
    notes = client.files.create(file=("notes.md", b"The launch code is 1234."), purpose="assistants")
    assert (
        client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=notes.id).status
        == "completed"
    )
    model = scripted(
        model_server,
        [
            search("call_s", "launch code"),
            code("call_c", "print(1234 + 1)"),
            {"content": "It is 1234【0:0†notes.md】."},
        ],
    )
    tools: Any = [{"type": "file_search", "vector_store_ids": [store.id]}, AUTO]
    with client.responses.stream(model=model, input="The code plus one?", tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()
    names = [e.type for e in events]
    assert final.status == "completed" and names[-1] == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    search_events = [n for n in names if n.startswith("response.file_search_call.")]
    assert search_events == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ]
    code_events = [n for n in names if n.startswith("response.code_interpreter_call")]
    assert code_events == [
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ]
    # each item is added, then its progress, then done; the message after both calls
    order = [
        (e.type, getattr(e, "output_index", None))
        for e in events
        if e.type in ("response.output_item.added", "response.output_item.done")
    ]
    assert order == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.output_item.done", 2),
    ]
    done_code = next(e for e in events if e.type == "response.code_interpreter_call_code.done")
    assert done_code.code == "print(1234 + 1)"  # type: ignore[union-attr]
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert len(added) == 1 and added[0].annotation.file_id == notes.id  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert deltas == final.output_text == "It is 1234."
    assert [i.type for i in final.output] == ["file_search_call", "code_interpreter_call", "message"]
    sent = model_server.requests(model)[-1]["body"]
    assert sent["stream"] is True and sent["messages"][-1]["content"] == "1235\n"


@pytest.mark.parametrize("choice", ["code_interpreter"])
def test_a_forced_built_in_tool_is_forced_in_the_first_round_only(
    client: OpenAI, model_server: ScriptedModel, choice: str
) -> None:
    model = scripted(model_server, [code("call_f", "print(2)"), {"content": "Two."}])
    response = client.responses.create(
        model=model,
        input="Run something.",
        tools=[AUTO],
        tool_choice={"type": choice},  # type: ignore[misc]
    )
    assert response.status == "completed", response.error
    first, second = [r["body"] for r in model_server.requests(model)[-2:]]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "code_interpreter"}}
    assert second["tool_choice"] == "auto"


def test_max_tool_calls_stops_built_in_calls(client: OpenAI, model_server: ScriptedModel) -> None:
    model = scripted(
        model_server,
        [
            {
                "tool_calls": [
                    {"id": "a", "name": "code_interpreter", "arguments": json.dumps({"code": "print(1)"})},
                    {"id": "b", "name": "code_interpreter", "arguments": json.dumps({"code": "print(2)"})},
                ]
            },
            {"content": "One ran."},
        ],
    )
    response = client.responses.create(
        model=model, input="Two things.", tools=[AUTO], max_tool_calls=1, include=OUTPUTS
    )
    assert response.status == "completed", response.error
    first, second, _ = response.output
    assert (first.status, second.status) == ("completed", "incomplete")  # type: ignore[union-attr]
    last = model_server.requests(model)[-1]["body"]
    assert "tools" not in last  # spent: the model is offered no built-in tool any more
    assert "at most 1 built-in tool calls" in last["messages"][-1]["content"]
