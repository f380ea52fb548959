"""The OpenAI Agents SDK (`openai-agents`) runs an agent with a function tool against Assistd,
with only its client's base URL changed (it speaks the Responses API only)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.conftest import ScriptedModel, Server

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
