"""Conversations and their items through the official SDK: CRUD, the items' wire shapes, list
order and pagination, validation, and projects kept apart."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from tests.conftest import KEY_B, Server, in_every_mode

server = in_every_mode()  # and `serve --workers 2`: streams, polls and ends cross its hub


MIXED: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    {"role": "assistant", "content": "hello"},
    {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": 1}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "42"},
    {"type": "reasoning", "id": "rs_given", "summary": [{"type": "summary_text", "text": "thought"}]},
]


def test_crud(client: OpenAI) -> None:
    conv = client.conversations.create(metadata={"topic": "demo"})
    assert (
        conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    )
    assert isinstance(conv.created_at, int)
    assert client.conversations.retrieve(conv.id).model_dump() == conv.model_dump()
    changed = client.conversations.update(conv.id, metadata={"topic": "other"})
    assert changed.metadata == {"topic": "other"} and client.conversations.retrieve(conv.id).metadata == {
        "topic": "other"
    }
    assert client.conversations.update(conv.id, metadata=None).metadata == {}
    with pytest.raises(BadRequestError) as info:  # metadata is required, if only as null
        client.post(f"/conversations/{conv.id}", body={}, cast_to=httpx.Response)
    assert info.value.body["param"] == "metadata"
    gone = client.conversations.delete(conv.id)
    assert gone.id == conv.id and gone.deleted and gone.object == "conversation.deleted"
    with pytest.raises(NotFoundError):
        client.conversations.retrieve(conv.id)
    with pytest.raises(NotFoundError):
        client.conversations.items.list(conv.id)


def test_initial_items_are_stored_as_openai_lists_them(client: OpenAI) -> None:
    conv = client.conversations.create(items=MIXED)
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in items] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
    ]
    prefixes = ["msg_", "msg_", "msg_", "fc_", "fco_", "rs_"]
    assert all(i.id.startswith(p) for i, p in zip(items, prefixes, strict=True))
    assert items[5].id != "rs_given"  # a passed-back item is stored under a new id
    system, user, assistant, call, output, reasoning = items
    assert system.role == "system" and system.content[0].type == "input_text"
    assert system.content[0].text == "be brief" and system.status == "completed"
    assert user.role == "user" and user.content[0].text == "hi"
    assert assistant.role == "assistant" and assistant.content[0].type == "output_text"
    assert assistant.content[0].text == "hello" and assistant.content[0].annotations == []
    assert (call.call_id, call.name, call.arguments, call.status) == (
        "call_1",
        "lookup",
        '{"q": 1}',
        "completed",
    )
    assert (output.call_id, output.output) == ("call_1", "42")
    assert reasoning.summary[0].text == "thought"
    got = client.conversations.items.retrieve(call.id, conversation_id=conv.id)
    assert got.model_dump() == call.model_dump()


def test_add_list_and_paginate(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "0"}])
    added = client.conversations.items.create(
        conv.id, items=[{"role": "user", "content": str(i)} for i in range(1, 6)]
    )
    assert added.object == "list" and not added.has_more and len(added.data) == 5
    assert added.first_id == added.data[0].id and added.last_id == added.data[-1].id
    everything = [i.content[0].text for i in client.conversations.items.list(conv.id)]  # newest first
    assert everything == ["5", "4", "3", "2", "1", "0"]
    page = client.conversations.items.list(conv.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["0", "1"] and page.has_more
    after = client.conversations.items.list(conv.id, limit=3, order="asc", after=page.last_id)
    assert [i.content[0].text for i in after.data] == ["2", "3", "4"]
    assert [i.content[0].text for i in client.conversations.items.list(conv.id, limit=2, order="asc")] == [
        str(i) for i in range(6)
    ]  # the SDK's auto-pagination follows `after`


def test_item_reference_copies_the_item(client: OpenAI) -> None:
    source = client.conversations.create(items=[{"role": "user", "content": "remember me"}])
    original = client.conversations.items.list(source.id).data[0]
    conv = client.conversations.create(
        items=[{"type": "item_reference", "id": original.id}, {"id": original.id}]
    )
    copies = client.conversations.items.list(conv.id, order="asc").data
    assert [c.content[0].text for c in copies] == ["remember me", "remember me"]
    assert len({original.id, copies[0].id, copies[1].id}) == 3
    with pytest.raises(NotFoundError) as info:
        client.conversations.create(items=[{"type": "item_reference", "id": "msg_missing"}])
    assert info.value.body["param"] == "items[0].id"


def test_delete_item_answers_the_conversation(client: OpenAI) -> None:
    conv = client.conversations.create(
        items=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    )
    first = client.conversations.items.list(conv.id, order="asc").data[0]
    answer = client.conversations.items.delete(first.id, conversation_id=conv.id)
    assert answer.id == conv.id and answer.object == "conversation"
    assert [i.content[0].text for i in client.conversations.items.list(conv.id)] == ["b"]
    with pytest.raises(NotFoundError):
        client.conversations.items.retrieve(first.id, conversation_id=conv.id)
    with pytest.raises(NotFoundError):
        client.conversations.items.delete(first.id, conversation_id=conv.id)


def test_items_of_another_conversation_are_404(client: OpenAI) -> None:
    one = client.conversations.create(items=[{"role": "user", "content": "x"}])
    other = client.conversations.create()
    item = client.conversations.items.list(one.id).data[0]
    with pytest.raises(NotFoundError):
        client.conversations.items.retrieve(item.id, conversation_id=other.id)


def test_projects_are_isolated(server: Server) -> None:
    mine = server.client()
    conv = mine.conversations.create(items=[{"role": "user", "content": "secret"}])
    item = mine.conversations.items.list(conv.id).data[0]
    theirs = server.client(KEY_B)
    calls = [
        lambda: theirs.conversations.retrieve(conv.id),
        lambda: theirs.conversations.update(conv.id, metadata={"a": "b"}),
        lambda: theirs.conversations.delete(conv.id),
        lambda: theirs.conversations.items.list(conv.id),
        lambda: theirs.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}]),
        lambda: theirs.conversations.items.retrieve(item.id, conversation_id=conv.id),
        lambda: theirs.conversations.items.delete(item.id, conversation_id=conv.id),
        lambda: theirs.conversations.create(items=[{"type": "item_reference", "id": item.id}]),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    assert [i.id for i in mine.conversations.items.list(conv.id)] == [item.id]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"items": [{"role": "user", "content": "x"}] * 21}, "items"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"items": [{"role": "robot", "content": "x"}]}, "items[0].role"),
        ({"items": [{"role": "user"}]}, "items[0].content"),
        ({"items": [{"type": "web_search_call", "id": "ws_1"}]}, "items[0].type"),
        ({"items": [{"type": "file_search_call", "id": "fs_1"}]}, "items[0].type"),
        ({"items": [{"type": {"a": 1}, "id": "x"}]}, "items[0].type"),  # not a string: was a 500
        ({"items": [{"type": ["message"], "role": "user"}]}, "items[0].type"),
        ({"items": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "items[0].call_id"),
        (
            {"items": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
            "items[0].content[0]",
        ),
        (
            {"items": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
            "items[0].content[0]",
        ),
        ({"items": [{"role": "user", "content": [{"type": "input_image"}]}]}, "items[0].content[0]"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_bodies_are_400(server: Server, body: dict[str, Any], param: str) -> None:
    client = server.client(KEY_B)
    with pytest.raises(BadRequestError) as info:
        client.post("/conversations", body=body, cast_to=httpx.Response)
    err = info.value.body
    assert info.value.status_code == 400 and err["type"] == "invalid_request_error"
    assert err["param"] == param, err


def test_adding_items_is_checked(client: OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "kept"}])
    for items, param in [
        ([], "items"),
        ([{"role": "user", "content": "x"}] * 21, "items"),
        (
            [{"role": "user", "content": "ok"}, {"type": "function_call_output", "output": "x"}],
            "items[1].call_id",
        ),
    ]:
        with pytest.raises(BadRequestError) as info:
            client.conversations.items.create(conv.id, items=items)
        assert info.value.body["param"] == param
    assert [i.content[0].text for i in client.conversations.items.list(conv.id)] == ["kept"]


def test_a_missing_file_is_404_and_adds_nothing(client: OpenAI) -> None:
    conv = client.conversations.create()
    with pytest.raises(NotFoundError):
        client.conversations.items.create(
            conv.id, items=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-missing"}]}]
        )
    assert client.conversations.items.list(conv.id).data == []
