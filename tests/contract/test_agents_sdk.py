"""The OpenAI Agents SDK (`openai-agents`) runs an agent with a function tool against Assistd,
with only its client's base URL changed (it speaks the Responses API only)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from agents import (
    Agent,
    CodeInterpreterTool,
    FileSearchTool,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.conftest import ScriptedModel, Server
from tests.contract.test_code_interpreter import docker_ready  # noqa: F401  (a fixture: the hosted tools need Docker)

set_tracing_disabled(True)  # traces would go to OpenAI's servers: nothing leaves loopback here


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_agent_with_a_function_tool(server: Server, model_server: ScriptedModel) -> None:
    call = {"id": "call_agent", "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
    model = model_server.script(
        str(uuid.uuid4()), [{"tool_calls": [call]}, {"content": "It is sunny in Paris."}]
    )
    plain = server.client()

    async def go() -> Any:
        async with AsyncOpenAI(base_url=plain.base_url, api_key=plain.api_key) as client:
            agent = Agent(
                name="Weather",
                instructions="Answer with the weather.",
                tools=[get_weather],
                model=OpenAIResponsesModel(model=model, openai_client=client),
            )
            return await Runner.run(agent, "What is the weather in Paris?")

    result = asyncio.run(go())
    assert result.final_output == "It is sunny in Paris."
    (sent,) = [r["body"] for r in model_server.requests(model)][-1:]
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": "call_agent", "content": "sunny in Paris"}


def test_agent_with_hosted_tools(server: Server, model_server: ScriptedModel) -> None:
    plain = server.client()
    store = plain.vector_stores.create(name="agent notes")
    notes = plain.files.create(file=("notes.md", b"The launch code is 1234."), purpose="assistants")
    assert (
        plain.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=notes.id).status
        == "completed"
    )
    search = {"id": "call_s", "name": "file_search", "arguments": json.dumps({"query": "launch code"})}
    run = {"id": "call_c", "name": "code_interpreter", "arguments": json.dumps({"code": "print(1234 + 1)"})}
    model = model_server.script(
        str(uuid.uuid4()),
        [{"tool_calls": [search]}, {"tool_calls": [run]}, {"content": "The code plus one is 1235."}],
    )

    async def go() -> Any:
        async with AsyncOpenAI(base_url=plain.base_url, api_key=plain.api_key) as client:
            agent = Agent(
                name="Analyst",
                instructions="Look things up and compute.",
                tools=[
                    FileSearchTool(vector_store_ids=[store.id], include_search_results=True),
                    CodeInterpreterTool(
                        tool_config={"type": "code_interpreter", "container": {"type": "auto"}}
                    ),
                ],
                model=OpenAIResponsesModel(model=model, openai_client=client),
            )
            return await Runner.run(agent, "What is the launch code plus one?")

    result = asyncio.run(go())
    assert result.final_output == "The code plus one is 1235."
    calls = [i.raw_item for i in result.new_items if i.type == "tool_call_item"]
    kinds = [c.type if not isinstance(c, dict) else c["type"] for c in calls]
    assert kinds == ["file_search_call", "code_interpreter_call"]
    found = calls[0]
    assert not isinstance(found, dict) and found.type == "file_search_call"
    assert found.results and found.results[0].file_id == notes.id  # include_search_results asked for them
    sent = model_server.requests(model)[-1]["body"]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_c", "content": "1235\n"}
