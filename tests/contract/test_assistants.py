"""Assistants CRUD, lists, validation and authentication through the official SDK."""

import httpx
import pytest
from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

from tests.conftest import KEY_B, Server


def test_crud(client: OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    a = client.beta.assistants.create(
        model="echo",
        name="A",
        description="d",
        instructions="i",
        tools=tools,
        metadata={"k": "v"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert a.id.startswith("asst_") and a.object == "assistant"
    assert a.tools[0].type == "function" and a.tools[0].function.name == "get_weather"
    got = client.beta.assistants.retrieve(a.id)
    assert got.model_dump() == a.model_dump()
    changed = client.beta.assistants.update(a.id, name="B", metadata={"k": "w"})
    assert changed.name == "B" and changed.metadata == {"k": "w"} and changed.instructions == "i"
    assert changed.response_format.type == "json_object"
    deleted = client.beta.assistants.delete(a.id)
    assert deleted.id == a.id and deleted.deleted and deleted.object == "assistant.deleted"
    with pytest.raises(NotFoundError):
        client.beta.assistants.retrieve(a.id)


def test_list_pagination(server: Server) -> None:
    client = server.client(KEY_B)  # its own project, so the list holds only these
    before = [a.id for a in client.beta.assistants.list(limit=100)]
    made = [client.beta.assistants.create(model="echo", name=f"n{i}").id for i in range(7)]
    page = client.beta.assistants.list(limit=3)
    assert [a.id for a in page.data] == made[::-1][:3]
    assert page.has_more and page.first_id == made[-1] and page.last_id == made[-3]
    everything = [a.id for a in client.beta.assistants.list(limit=2)]
    assert everything == made[::-1] + before
    asc = client.beta.assistants.list(order="asc", after=made[1], limit=2)
    assert [a.id for a in asc.data] == made[2:4]
    back = client.beta.assistants.list(order="desc", before=made[3], limit=2)
    assert [a.id for a in back.data] == [made[5], made[4]]


def test_bad_parameters_are_400(client: OpenAI) -> None:
    cases = [
        ({"model": "echo", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"model": "echo", "metadata": {"k" * 65: "v"}}, "metadata"),
        ({"model": "echo", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"model": "echo", "tools": [{"type": "code_interpreter"}] * 129}, "tools"),
        ({"model": "echo", "tools": [{"type": "nope"}]}, "tools[0]"),
        ({"model": "echo", "temperature": 3}, "temperature"),
        ({"model": "echo", "bogus": 1}, "bogus"),
        ({}, "model"),
    ]
    for body, param in cases:
        with pytest.raises(BadRequestError) as info:
            client.post("/assistants", body=body, cast_to=httpx.Response)
        err = info.value.body
        assert err["type"] == "invalid_request_error" and err["param"].startswith(param), err
        assert info.value.status_code == 400
    assert not any(a.name == "should-not-exist" for a in client.beta.assistants.list(limit=100))


def test_errors_are_openai_shaped(server: Server) -> None:
    raw = httpx.get(
        f"{server.url}/v1/assistants/asst_missing", headers={"Authorization": "Bearer sk-test-project-a"}
    )
    assert raw.status_code == 404
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}
    bad_json = httpx.post(
        f"{server.url}/v1/assistants",
        content=b"{not json",
        headers={"Authorization": "Bearer sk-test-project-a"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"


def test_authentication(server: Server) -> None:
    with pytest.raises(AuthenticationError) as info:
        server.client("sk-wrong").beta.assistants.list()
    assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    raw = httpx.get(f"{server.url}/v1/assistants")
    assert raw.status_code == 401 and "API key" in raw.json()["error"]["message"]


def test_projects_are_isolated(server: Server) -> None:
    a = server.client().beta.assistants.create(model="echo")
    other = server.client(KEY_B)
    with pytest.raises(NotFoundError):
        other.beta.assistants.retrieve(a.id)
    with pytest.raises(NotFoundError):
        other.beta.assistants.delete(a.id)
    assert a.id not in [x.id for x in other.beta.assistants.list(limit=100)]
    thread = server.client().beta.threads.create()
    with pytest.raises(NotFoundError):
        other.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
    with pytest.raises(NotFoundError):
        other.beta.threads.messages.list(thread_id=thread.id)
