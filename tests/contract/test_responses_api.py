"""The Responses API's own side through the official SDK: what a create checks (each malformed
parameter a 400 naming it, with nothing written), the stored response and its normalised input
items, the links to a previous response and to a conversation, input token counts, cancel and
delete. No test here waits for a model's answer: background responses are read as they stand
(queued until a worker takes them)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from sqlalchemy import text

from core.db import sync_engine
from tests.conftest import KEY_B, Server

SLOW = "slow:10000"  # a model that answers after 10 s: a response on it stays active meanwhile
FUNCTION = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


def settle(client: OpenAI, response_id: str) -> None:
    """Cancel a response on SLOW: no worker stays busy with it."""
    client.responses.cancel(response_id)


def counts(server: Server, project: str) -> dict[str, int]:
    """Rows per table of one project, read from the server's own database."""
    tables = ("responses", "conversations", "items")
    sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t} WHERE project = :p" for t in tables)
    engine = sync_engine(server.env["ASSISTD_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return {name: n for name, n in conn.execute(text(sql), {"p": project}).all()}
    finally:
        engine.dispose()


def test_a_background_response_is_stored_queued(client: OpenAI) -> None:
    created = client.responses.create(
        model="echo",
        input="hi",
        background=True,
        instructions="be brief",
        tools=[FUNCTION],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "lookup"},
        metadata={"k": "v"},
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=64,
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
        reasoning={"effort": "low"},
        truncation="auto",
        user="u1",
        prompt_cache_key="cache",
    )
    assert created.id.startswith("resp_") and created.object == "response" and created.background
    assert created.status in ("queued", "in_progress", "completed")
    assert created.store and created.model == "echo" and created.instructions == "be brief"
    assert created.tools[0].type == "function" and created.tools[0].name == "lookup"
    assert created.tool_choice.type == "function" and created.tool_choice.name == "lookup"  # type: ignore[union-attr]
    assert created.metadata == {"k": "v"} and created.temperature == 0.5 and created.top_p == 0.9
    assert created.max_output_tokens == 64 and created.truncation == "auto" and created.user == "u1"
    assert created.text.format.type == "json_schema" and created.text.format.schema_ == {"type": "object"}  # type: ignore[union-attr]
    assert created.reasoning is not None and created.reasoning.effort == "low"
    assert created.previous_response_id is None and created.conversation is None
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.status in ("queued", "in_progress", "completed")
    assert got.created_at == created.created_at and got.metadata == created.metadata


def test_the_wire_keeps_integer_timestamps_and_openai_names(server: Server) -> None:
    client = server.client()
    created = client.responses.create(
        model="echo",
        input="x",
        background=True,
        text={"format": {"type": "json_schema", "name": "n", "schema": {}}},
    )
    raw = httpx.get(
        f"{server.url}/v1/responses/{created.id}", headers={"Authorization": f"Bearer {client.api_key}"}
    ).json()
    assert isinstance(raw["created_at"], int) and raw["text"]["format"]["schema"] == {}
    assert raw["tools"] == [] and isinstance(raw["output"], list) and raw["tool_choice"] == "auto"


def test_a_string_input_is_one_user_message(client: OpenAI) -> None:
    response = client.responses.create(model="echo", input="hello", background=True)
    items = client.responses.input_items.list(response.id).data
    assert len(items) == 1
    message = items[0].model_dump()
    assert message["id"].startswith("msg_") and message["type"] == "message" and message["role"] == "user"
    assert message["status"] == "completed"
    assert [(p["type"], p["text"]) for p in message["content"]] == [("input_text", "hello")]


def test_input_items_are_normalised_and_paginated(client: OpenAI) -> None:
    file_id = client.files.create(file=("a.txt", b"notes"), purpose="user_data").id
    given: list[Any] = [
        {"role": "developer", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                {"type": "input_file", "file_id": file_id},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "seen", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        {"type": "reasoning", "id": "rs_old", "summary": [{"type": "summary_text", "text": "hm"}]},
    ]
    response = client.responses.create(model="echo", input=given, background=True, tools=[FUNCTION])  # type: ignore[list-item]
    newest_first = client.responses.input_items.list(response.id).data
    assert [i.type for i in newest_first] == [
        "reasoning",
        "function_call_output",
        "function_call",
        "message",
        "message",
        "message",
    ]
    items = [
        i.model_dump(exclude_none=True) for i in client.responses.input_items.list(response.id, order="asc")
    ]
    developer, user, assistant, call, output, reasoning = items
    assert developer["content"][0]["text"] == "rules" and developer["role"] == "developer"
    assert [p["type"] for p in user["content"]] == ["input_text", "input_image", "input_file"]
    assert (
        user["content"][1]["image_url"] == "https://example.com/a.png"
        and user["content"][1]["detail"] == "low"
    )
    assert user["content"][2]["file_id"] == file_id
    assert assistant["role"] == "assistant" and assistant["content"][0]["text"] == "seen"
    assert call["id"].startswith("fc_") and call["call_id"] == "call_1" and call["status"] == "completed"
    assert output["id"].startswith("fco_") and output["output"] == "found"
    assert reasoning["id"].startswith("rs_") and reasoning["id"] != "rs_old"
    page = client.responses.input_items.list(response.id, order="asc", limit=4)
    assert len(page.data) == 4 and page.has_more and page.first_id == items[0]["id"]
    rest = client.responses.input_items.list(response.id, order="asc", after=page.last_id)
    assert [i.id for i in rest.data] == [items[4]["id"], items[5]["id"]] and not rest.has_more
    for limit in (0, 101):
        with pytest.raises(BadRequestError):
            client.responses.input_items.list(response.id, limit=limit)


def test_item_references_are_copied(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "from the conversation"}])
    original = client.conversations.items.list(conv.id).data[0]
    response = client.responses.create(
        model="echo", input=[{"type": "item_reference", "id": original.id}], background=True
    )
    (copy,) = client.responses.input_items.list(response.id).data
    assert copy.id != original.id and copy.content[0].text == "from the conversation"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError) as info:
        client.responses.create(
            model="echo", input=[{"type": "item_reference", "id": "msg_nope"}], background=True
        )
    assert info.value.body["param"] == "input[0].id"


def test_previous_response_and_conversation(server: Server) -> None:
    client = server.client()
    first = client.responses.create(model=SLOW, input="one", background=True)
    with pytest.raises(BadRequestError) as locked:  # its output, which the next one follows, is not there yet
        client.responses.create(model="echo", input="two", previous_response_id=first.id)
    assert locked.value.body["param"] == "previous_response_id"
    client.responses.cancel(first.id)
    first = client.responses.create(model="echo", input="one")
    second = client.responses.create(
        model="echo", input="two", previous_response_id=first.id, background=True
    )
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    with pytest.raises(NotFoundError) as info:
        client.responses.create(model="echo", input="x", previous_response_id="resp_missing")
    assert info.value.body["code"] == "previous_response_not_found"
    assert info.value.body["message"] == "Previous response with id 'resp_missing' not found."
    with pytest.raises(NotFoundError):  # another project's
        server.client(KEY_B).responses.create(model="echo", input="x", previous_response_id=first.id)
    for form in (lambda c: c, lambda c: {"id": c}):  # an id, or an object holding it
        conv = client.conversations.create()
        on_it = client.responses.create(model="echo", input="x", conversation=form(conv.id), background=True)
        assert on_it.conversation is not None and on_it.conversation.id == conv.id
        assert client.responses.retrieve(on_it.id).conversation.id == conv.id  # type: ignore[union-attr]
    with pytest.raises(NotFoundError) as info:
        client.responses.create(model="echo", input="x", conversation="conv_missing")
    assert info.value.body["param"] == "conversation"


def test_one_response_at_a_time_on_a_conversation(client: OpenAI) -> None:
    conv = client.conversations.create()
    active = client.responses.create(model=SLOW, input="x", conversation=conv.id, background=True)
    with pytest.raises(BadRequestError) as info:
        client.responses.create(model="echo", input="y", conversation=conv.id, background=True)
    assert info.value.body["code"] == "conversation_locked" and info.value.body["param"] == "conversation"
    with pytest.raises(BadRequestError):  # its end would add items to a conversation that is gone
        client.conversations.delete(conv.id)
    assert client.responses.retrieve(active.id).status in ("queued", "in_progress")
    settle(client, active.id)


CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "model"),
    ({"model": ""}, "model"),
    ({"input": 5}, "input"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user"}]}, "input[0].content"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]},
        "input[0].content[0]",
    ),
    (
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x/a.png", "file_id": "f"}],
                }
            ]
        },
        "input[0].content[0]",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "aGk="}]}]},
        "input[0].content[0].filename",
    ),
    ({"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]}, "input[0].content[0]"),
    (
        {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
        "input[0].content[0]",
    ),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]}, "input[0].type"),
    ({"input": [{"type": "code_interpreter_call", "id": "ci_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": "x"}] * 2049}, "input"),
    ({"instructions": "x" * 256_001}, "instructions"),
    ({"conversation": {"id": 5}}, "conversation.id"),
    ({"conversation": 5}, "conversation"),
    ({"conversation": "conv_x", "previous_response_id": "resp_x"}, "conversation"),
    ({"store": False, "background": True}, "store"),
    ({"tools": [{"type": "file_search"}]}, "tools[0].vector_store_ids"),
    (
        {"tools": [{"type": "file_search", "vector_store_ids": [], "max_num_results": 51}]},
        "tools[0].max_num_results",
    ),
    (
        {"tools": [{"type": "file_search", "vector_store_ids": [], "filters": {"type": "eq"}}]},
        "tools[0].filters",
    ),
    (
        {"tools": [{"type": "file_search", "vector_store_ids": [], "ranking_options": {"ranker": "best"}}]},
        "tools[0].ranking_options.ranker",
    ),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].container"),
    (
        {"tools": [{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "2g"}}]},
        "tools[0].container.memory_limit",
    ),
    (
        {
            "tools": [
                {
                    "type": "code_interpreter",
                    "container": {"type": "auto", "network_policy": {"type": "allowlist"}},
                }
            ]
        },
        "tools[0].container.network_policy.type",
    ),
    ({"tools": [{"type": "code_interpreter", "container": "cntr_1"}] * 2}, "tools"),
    (
        {"tools": [{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}}]},
        "tools[0].container.memory_limit",
    ),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [FUNCTION, FUNCTION]}, "tools"),
    ({"tools": [FUNCTION] * 129}, "tools"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice.type"),
    ({"tool_choice": {"type": "function", "name": "other"}, "tools": [FUNCTION]}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"max_output_tokens": 15}, "max_output_tokens"),
    ({"max_tool_calls": 0}, "max_tool_calls"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"text": {"format": {"type": "xml"}}}, "text.format"),
    ({"text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"text": {"verbosity": "loud"}}, "text.verbosity"),
    ({"truncation": "sometimes"}, "truncation"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata"),
    ({"include": ["everything"]}, "include[0]"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"user": "u" * 513}, "user"),
    ({"safety_identifier": "s" * 129}, "safety_identifier"),
    ({"prompt_cache_key": "k" * 513}, "prompt_cache_key"),
    ({"stream": "yes"}, "stream"),
    ({"background": 1}, "background"),
    ({"bogus": 1}, "bogus"),
]


def test_each_malformed_parameter_is_a_400_that_names_it_and_writes_nothing(server: Server) -> None:
    client = server.client(KEY_B)
    before = counts(server, "proj_b")
    for body, param in CASES:
        sent = {"model": "echo", "input": "x", "background": True} | body
        sent = {k: v for k, v in sent.items() if not (k == "model" and body == {})}
        with pytest.raises(BadRequestError) as info:
            client.post("/responses", body=sent, cast_to=httpx.Response)
        err = info.value.body
        assert info.value.status_code == 400 and err["type"] == "invalid_request_error", (body, err)
        assert err["param"] == param, (body, err)
    assert counts(server, "proj_b") == before


def test_built_in_tools_name_stored_objects_of_the_project(client: OpenAI) -> None:
    # a vector store, file or container the tools name must be the caller's: 404 before any write
    tools: list[Any] = [
        {"type": "file_search", "vector_store_ids": ["vs_missing"]},
        {"type": "code_interpreter", "container": "cntr_missing"},
        {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-missing"]}},
    ]
    for tool in tools:
        with pytest.raises(NotFoundError) as info:
            client.responses.create(model="echo", input="x", tools=[tool])
        assert "missing" in info.value.body["message"]


def test_another_projects_response_is_404(server: Server) -> None:
    response = server.client().responses.create(model="echo", input="mine", background=True)
    other = server.client(KEY_B)
    for call in (
        lambda: other.responses.retrieve(response.id),
        lambda: other.responses.delete(response.id),
        lambda: other.responses.cancel(response.id),
        lambda: other.responses.input_items.list(response.id),
        lambda: other.responses.input_tokens.count(model="echo", previous_response_id=response.id),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert server.client().responses.retrieve(response.id).id == response.id


def test_stream_a_background_response_again(client: OpenAI) -> None:
    plain = client.responses.create(model=SLOW, input="x", background=True)
    with pytest.raises(BadRequestError) as refused:  # created without stream: no events are kept
        client.responses.retrieve(plain.id, stream=True)
    assert refused.value.body["param"] == "stream"
    settle(client, plain.id)
    with client.responses.create(model=SLOW, input="x", background=True, stream=True) as created:
        response = next(iter(created)).response
    with client.responses.retrieve(response.id, stream=True) as events:
        first = next(iter(events))
    assert first.type == "response.created" and first.sequence_number == 0
    assert first.response.id == response.id
    with client.responses.retrieve(response.id, stream=True, starting_after=0) as events:
        after = next(iter(events))
    assert after.type == "response.queued" and after.sequence_number == 1
    settle(client, response.id)


def test_input_tokens(server: Server) -> None:
    client = server.client()
    count = client.responses.input_tokens.count

    def tokens(**kw: Any) -> int:
        answer = count(model="echo", **kw)
        assert answer.object == "response.input_tokens"
        return answer.input_tokens

    short, long = tokens(input="hi"), tokens(input="hi " * 400)
    # gpt-4o's own encoding (o200k_base): 401 tokens of text and 4 for the message
    assert count(model="gpt-4o", input="word " * 400).input_tokens == 405
    assert 0 < short < long and long >= 300
    assert tokens(input="hi", instructions="x" * 400) >= short + 100
    assert tokens(input="hi", tools=[FUNCTION]) > short
    assert (
        tokens(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}])
        >= 85
    )
    first = client.responses.create(model="echo", input="word " * 200, background=True)
    assert tokens(input="hi", previous_response_id=first.id) >= short + 200
    conv = client.conversations.create(items=[{"role": "user", "content": "word " * 200}])
    assert tokens(input="hi", conversation=conv.id) >= short + 200
    with pytest.raises(NotFoundError):
        count(model="echo", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    with pytest.raises(NotFoundError):
        count(model="echo", conversation="conv_missing")


def test_cancel_a_background_response(client: OpenAI) -> None:
    response = client.responses.create(model=SLOW, input="x", background=True)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.id == response.id and cancelled.status == "cancelled"
    assert client.responses.retrieve(response.id).status == "cancelled"
    assert client.responses.cancel(response.id).status == "cancelled"  # as it stands


def test_only_a_background_response_can_be_cancelled(client: OpenAI) -> None:
    with client.responses.create(model=SLOW, input="x", stream=True) as events:
        created = next(iter(events))
        assert created.type == "response.created"
        with pytest.raises(BadRequestError) as info:
            client.responses.cancel(created.response.id)
    assert "background" in info.value.body["message"]


def test_delete(client: OpenAI) -> None:
    response = client.responses.create(model=SLOW, input="x", background=True)
    assert client.responses.delete(response.id) is None  # the SDK reads no body
    with pytest.raises(NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(NotFoundError):
        client.responses.input_items.list(response.id)
    with pytest.raises(NotFoundError):
        client.responses.delete(response.id)
