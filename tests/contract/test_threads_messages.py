"""Threads and messages through the official SDK."""

import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from tests.conftest import KEY_B, Server


def test_thread_with_initial_messages(client: OpenAI) -> None:
    # a file_search attachment must exist: it goes into the thread's vector store
    file_id = client.files.create(file=("a.txt", b"notes"), purpose="assistants").id
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "first",
                "attachments": [{"file_id": file_id, "tools": [{"type": "file_search"}]}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "second"}]},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
            },
        ],
        metadata={"user": "42"},
    )
    assert thread.id.startswith("thread_") and thread.metadata == {"user": "42"}
    msgs = client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [m.role for m in msgs.data] == ["user", "assistant", "user"]
    assert msgs.data[0].attachments[0].file_id == file_id
    assert msgs.data[1].content[0].text.value == "second" and msgs.data[1].content[0].text.annotations == []
    assert msgs.data[2].content[0].type == "image_url"
    assert all(m.run_id is None and m.status == "completed" for m in msgs.data)


def test_thread_modify_delete(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    assert client.beta.threads.update(thread.id, metadata={"a": "b"}).metadata == {"a": "b"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"a": "b"}
    msg = client.beta.threads.messages.create(thread_id=thread.id, role="user", content="x")
    gone = client.beta.threads.delete(thread.id)
    assert gone.deleted and gone.object == "thread.deleted"
    with pytest.raises(NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(NotFoundError):
        client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id)


def test_message_crud(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="hello", metadata={"x": "1"}
    )
    assert m.id.startswith("msg_") and m.thread_id == thread.id and m.content[0].text.value == "hello"
    assert client.beta.threads.messages.retrieve(m.id, thread_id=thread.id).id == m.id
    assert client.beta.threads.messages.update(m.id, thread_id=thread.id, metadata={"x": "2"}).metadata == {
        "x": "2"
    }
    d = client.beta.threads.messages.delete(m.id, thread_id=thread.id)
    assert d.deleted and d.object == "thread.message.deleted"
    assert client.beta.threads.messages.list(thread_id=thread.id).data == []


def test_message_validation(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(BadRequestError) as info:
        client.beta.threads.messages.create(thread_id=thread.id, role="system", content="x")  # type: ignore[arg-type]
    assert info.value.body["param"] == "role"
    with pytest.raises(BadRequestError):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=[])
    with pytest.raises(NotFoundError):
        client.beta.threads.messages.create(thread_id="thread_nope", role="user", content="x")
    assert client.beta.threads.messages.list(thread_id=thread.id).data == []


def test_message_list_pages_and_checks(server: Server) -> None:
    """The list's cursors both ways, its run_id filter, an unknown cursor (400), an empty thread
    (an empty page, not a 404) and another project's thread (404, with or without a cursor)."""
    client = server.client()
    thread = client.beta.threads.create()
    empty = client.beta.threads.messages.list(thread_id=thread.id)
    assert empty.data == [] and not empty.has_more
    made = [
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=f"m{i}").id
        for i in range(5)
    ]
    page = client.beta.threads.messages.list(thread_id=thread.id, limit=2)
    assert [m.id for m in page.data] == made[::-1][:2] and page.has_more
    assert [m.id for m in client.beta.threads.messages.list(thread_id=thread.id, limit=2)] == made[::-1]
    asc = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=made[1], limit=2)
    assert [m.id for m in asc.data] == made[2:4] and asc.has_more
    back = client.beta.threads.messages.list(thread_id=thread.id, order="desc", before=made[1], limit=2)
    assert [m.id for m in back.data] == [made[3], made[2]] and back.has_more
    last = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=made[3])
    assert [m.id for m in last.data] == [made[4]] and not last.has_more
    with pytest.raises(BadRequestError) as bad:
        client.beta.threads.messages.list(thread_id=thread.id, after="msg_nope")
    assert bad.value.body["param"] == "after"  # type: ignore[index]
    assert client.beta.threads.messages.list(thread_id=thread.id, run_id="run_nope").data == []
    other = server.client(KEY_B)
    for cursor in ({}, {"after": made[0]}):
        with pytest.raises(NotFoundError):
            other.beta.threads.messages.list(thread_id=thread.id, **cursor)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        other.beta.threads.messages.create(thread_id=thread.id, role="user", content="x")
    with pytest.raises(NotFoundError):
        client.beta.threads.messages.list(thread_id="thread_nope")
