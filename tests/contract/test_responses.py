"""The Responses API executed on the engine, through the official SDK, in both modes: plain,
streamed (the SDK's `responses.stream()` helper), background, function calls continued with
previous_response_id, conversations, store=false, cancel, and the async client."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from openai import APITimeoutError, AsyncOpenAI, BadRequestError, NotFoundError, OpenAI

from tests.conftest import ScriptedModel, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _call(call_id: str, city: str = "Paris") -> dict[str, Any]:
    return {"id": call_id, "name": "get_weather", "arguments": json.dumps({"city": city})}


def test_plain_response(client: OpenAI) -> None:
    tag = uuid.uuid4().hex[:8]
    response = client.responses.create(
        model="echo",
        input=f"hello {tag}",
        instructions="Be brief.",
        metadata={"k": "v"},
        user="u1",
        safety_identifier="s1",
    )
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == f"You said: hello {tag}"
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_") and message.status == "completed"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.metadata == {"k": "v"} and response.user == "u1" and response.safety_identifier == "s1"
    got = client.responses.retrieve(response.id)
    assert got.output_text == response.output_text and got.status == "completed"
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"]


def test_streamed_response_with_the_sdk_helper(client: OpenAI) -> None:
    with client.responses.stream(model="words:5", input="count") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 5
    assert final.status == "completed" and final.output_text == "w1 w2 w3 w4 w5"
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_stream_sequence_numbers_increase(client: OpenAI) -> None:
    events = list(client.responses.create(model="words:3", input="x", stream=True))
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers)))
    added = [e for e in events if e.type == "response.output_item.added"]
    done = [e for e in events if e.type == "response.output_item.done"]
    assert len(added) == len(done) == 1 and added[0].item.id == done[0].item.id


def background_stream(client: OpenAI, **params: Any) -> Any:
    """A background response created with `stream: true`, whose stream the client leaves at once
    (it goes on: only a background response's events can be read again later)."""
    with client.responses.create(background=True, stream=True, **params) as stream:
        first = next(iter(stream))
    assert first.type == "response.created"
    return first.response


def test_background_response_polled_and_replayed(client: OpenAI) -> None:
    response = background_stream(client, model="slow:300", input="in the background")
    assert response.status == "queued" and response.background is True
    deadline = time.time() + 30
    while response.status in ("queued", "in_progress") and time.time() < deadline:
        time.sleep(0.1)
        response = client.responses.retrieve(response.id)
    assert response.status == "completed" and response.output_text == "You said: in the background"
    replayed = list(client.responses.retrieve(response.id, stream=True, starting_after=1))
    assert replayed[0].sequence_number == 2 and replayed[-1].type == "response.completed"


def test_function_call_continued_with_previous_response_id(
    client: OpenAI, model_server: ScriptedModel
) -> None:
    model = model_server.script(
        str(uuid.uuid4()), [{"tool_calls": [_call("call_w1")]}, {"content": "It is sunny in Paris."}]
    )
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    (call,) = first.output
    assert first.status == "completed" and call.type == "function_call"
    assert (
        call.call_id == "call_w1"
        and call.name == "get_weather"
        and json.loads(call.arguments) == {"city": "Paris"}
    )
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny"}],
    )
    assert second.output_text == "It is sunny in Paris." and second.previous_response_id == first.id
    (sent,) = [r["body"] for r in model_server.requests(model)][-1:]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert (
        sent["messages"][1]["tool_calls"][0]["id"] == "call_w1" and sent["messages"][2]["content"] == "sunny"
    )


def test_conversation_holds_both_turns(client: OpenAI, model_server: ScriptedModel) -> None:
    tag = uuid.uuid4().hex[:8]
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"{tag} one"}]
    )
    client.responses.create(model="echo", input=f"{tag} two", conversation=conversation.id)
    third = client.responses.create(model="echo", input=f"{tag} three", conversation={"id": conversation.id})
    assert third.conversation is not None and third.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    texts = [i.content[0].text for i in items]  # type: ignore[union-attr]
    assert texts == [
        f"{tag} one",
        f"{tag} two",
        f"You said: {tag} two",
        f"{tag} three",
        f"You said: {tag} three",
    ]
    (sent,) = [r["body"] for r in model_server.requests("echo") if f"{tag} three" in json.dumps(r["body"])]
    assert [m["content"] for m in sent["messages"]] == texts[:4]


def test_store_false_is_not_kept(client: OpenAI) -> None:
    response = client.responses.create(model="echo", input="forget", store=False)
    assert response.status == "completed" and response.store is False
    with pytest.raises(NotFoundError):
        client.responses.retrieve(response.id)


def test_cancel_a_background_response(client: OpenAI) -> None:
    response = client.responses.create(model="slow:5000", input="too slow", background=True)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    time.sleep(0.3)
    assert client.responses.retrieve(response.id).status == "cancelled"


def test_max_output_tokens_makes_it_incomplete(client: OpenAI) -> None:
    response = client.responses.create(model="length", input="long", max_output_tokens=16)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_model_error_fails_the_response(client: OpenAI) -> None:
    response = client.responses.create(model="error:429", input="x", background=True)
    deadline = time.time() + 30
    while response.status in ("queued", "in_progress") and time.time() < deadline:
        time.sleep(0.1)
        response = client.responses.retrieve(response.id)
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "rate_limit_exceeded"


def test_conversation_with_previous_response_is_refused(client: OpenAI) -> None:
    first = client.responses.create(model="echo", input="a")
    conversation = client.conversations.create()
    with pytest.raises(BadRequestError):
        client.responses.create(
            model="echo", input="b", previous_response_id=first.id, conversation=conversation.id
        )


def test_async_client(server: Server) -> None:
    async def go() -> None:
        async with AsyncOpenAI(base_url=server.client().base_url, api_key=server.client().api_key) as client:
            response = await client.responses.create(model="echo", input="async hello")
            assert response.output_text == "You said: async hello"
            async with client.responses.stream(model="words:2", input="x") as stream:
                final = await stream.get_final_response()
            assert final.output_text == "w1 w2"

    asyncio.run(go())


def test_truncation_disabled_refuses_a_long_input(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.responses.create(model="echo@small", input="lorem " * 5000)
    assert raised.value.code == "context_length_exceeded"


def test_truncation_auto_drops_the_oldest_items(client: OpenAI, model_server: ScriptedModel) -> None:
    tag = uuid.uuid4().hex[:8]
    response = client.responses.create(
        model="echo@small",
        truncation="auto",
        input=[
            {"role": "user", "content": f"{tag} old " + "lorem " * 5000},
            {"role": "user", "content": f"{tag} newest"},
        ],
    )
    assert response.status == "completed" and response.output_text == f"You said: {tag} newest"
    (sent,) = [
        r["body"] for r in model_server.requests("echo@small") if f"{tag} newest" in json.dumps(r["body"])
    ]
    assert [m["content"] for m in sent["messages"]] == [f"{tag} newest"]


def test_replay_after_the_log_expired(client: OpenAI, server: Server) -> None:
    """A background response replayed after its event log is gone (an hour after it ended) still
    ends the stream, with the end its row tells."""
    response = background_stream(client, model="echo", input="old news")
    deadline = time.time() + 30
    while response.status in ("queued", "in_progress") and time.time() < deadline:
        time.sleep(0.05)
        response = client.responses.retrieve(response.id)
    forget_events(server, response.id)
    started = time.time()
    events = list(client.responses.retrieve(response.id, stream=True))
    assert [e.type for e in events] == ["response.created", "response.completed"]
    assert time.time() - started < 5
    with client.responses.stream(response_id=response.id) as stream:  # the SDK's helper replays it too
        assert stream.get_final_response().output_text == "You said: old news"


def forget_events(server: Server, response_id: str) -> None:
    """Drop a response's event log as its expiry would (distributed mode: a Redis key)."""
    url = server.env.get("ASSISTD_REDIS_URL")
    if not url:
        pytest.skip("embedded mode keeps event logs in the server's own memory")
    import redis

    with redis.Redis.from_url(url) as r:
        assert r.delete(f"{server.env['ASSISTD_REDIS_NAMESPACE']}:events:{response_id}") == 1


def test_a_streaming_client_that_hangs_up_cancels_it(client: OpenAI) -> None:
    with client.responses.create(model="slow:5000", input="hang up", stream=True) as stream:
        first = next(iter(stream))
        assert first.type == "response.created"
        response_id = first.response.id
    deadline = time.time() + 10  # the relay notices the closed connection, and cancels
    while client.responses.retrieve(response_id).status != "cancelled" and time.time() < deadline:
        time.sleep(0.1)
    assert client.responses.retrieve(response_id).status == "cancelled"


def test_a_plain_client_that_hangs_up_cancels_it(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    client = server.client(timeout=1.0, max_retries=0)
    with pytest.raises(APITimeoutError):
        client.responses.create(model="slow:5000", input=f"gone {tag}")
    deadline = time.time() + 10
    while time.time() < deadline:
        status = status_of_input(server, f"gone {tag}")
        if status == "cancelled":
            break
        time.sleep(0.2)
    assert status == "cancelled"


def status_of_input(server: Server, text: str) -> str | None:
    """The status of the response whose input is `text`, read from the database (a plain create
    whose client left has no id the client saw)."""
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    url = server.env["ASSISTD_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sql(
                    "SELECT r.status FROM responses r JOIN items i ON i.response_id = r.id "
                    "WHERE i.output = false AND CAST(i.data AS TEXT) LIKE :pattern"
                ),
                {"pattern": f"%{text}%"},
            ).scalar()
    finally:
        engine.dispose()
