"""Hostile request bodies and parameters (issue 17): each is a 400 or 404 in OpenAI's envelope,
answered before anything is stored, and every list still answers afterwards.

Bodies the SDK cannot send (a lone surrogate as a JSON escape, NaN, strings for booleans) go
as raw JSON text through httpx."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import psycopg
import pytest
from openai import NotFoundError, OpenAI

from tests.conftest import KEY_A, KEY_B, Server

TABLES = ("assistants", "threads", "messages", "runs", "vector_stores", "vector_store_files")


def counts(server: Server) -> dict[str, int]:
    """Rows per table, read from the server's own database."""
    url = server.env["ASSISTD_DATABASE_URL"]
    sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in TABLES)
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return dict(conn.execute(sql).fetchall())
    with psycopg.connect(url.replace("+asyncpg", "").replace("+psycopg", "")) as conn:
        return {name: n for name, n in conn.execute(sql).fetchall()}


class Raw:
    """Raw JSON text to the API: what the SDK cannot send."""

    def __init__(self, server: Server) -> None:
        self.base = f"{server.url}/v1"
        self.headers = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}

    def post(self, path: str, text: str) -> httpx.Response:
        return httpx.post(self.base + path, content=text.encode(), headers=self.headers, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=30)


@pytest.fixture
def raw(server: Server) -> Raw:
    return Raw(server)


def refused(response: httpx.Response, status: int = 400, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err
    return err  # type: ignore[no-any-return]


def test_invalid_unicode_is_refused_before_any_write(
    raw: Raw, client: OpenAI, assistant: Any, server: Server
) -> None:
    thread = client.beta.threads.create()
    store = client.vector_stores.create(name="surrogates")
    file_id = client.files.create(file=("a.txt", b"text"), purpose="assistants").id
    before = counts(server)
    lone, nul = '"\\ud800"', '"a\\u0000b"'
    for bad in (lone, nul, '"\\udfff tail"'):
        cases = [
            ("/assistants", f'{{"model": {bad}}}', "model"),
            ("/assistants", f'{{"model": "echo", "metadata": {{"k": {bad}}}}}', "metadata.k"),
            ("/assistants", f'{{"model": "echo", "metadata": {{{bad}: "v"}}}}', "metadata"),
            (
                "/assistants",
                '{"model": "echo", "tools": [{"type": "function", "function": {"name": "f", '
                f'"parameters": {{"type": "object", "properties": {{"x": {{"description": {bad}}}}}}}}}}}]}}',
                "tools[0].function.parameters.properties.x.description",
            ),
            (
                "/assistants",
                '{"model": "echo", "response_format": {"type": "json_schema", "json_schema": '
                f'{{"name": "s", "schema": {{"enum": [{bad}]}}}}}}}}',
                "response_format.json_schema.schema.enum[0]",
            ),
            (f"/threads/{thread.id}/messages", f'{{"role": "user", "content": {bad}}}', "content"),
            (
                f"/threads/{thread.id}/messages",
                f'{{"role": "user", "content": [{{"type": "text", "text": {bad}}}]}}',
                "content[0].text",
            ),
            ("/threads", f'{{"messages": [{{"role": "user", "content": {bad}}}]}}', "messages[0].content"),
            ("/threads/runs", f'{{"assistant_id": "{assistant.id}", "model": {bad}}}', "model"),
            (
                f"/threads/{thread.id}/runs",
                f'{{"assistant_id": "{assistant.id}", "additional_instructions": {bad}}}',
                "additional_instructions",
            ),
            (f"/threads/{thread.id}", f'{{"metadata": {{"k": {bad}}}}}', "metadata.k"),
            (
                f"/vector_stores/{store.id}/files",
                f'{{"file_id": "{file_id}", "attributes": {{"a": {bad}}}}}',
                "attributes.a",
            ),
            ("/vector_stores", f'{{"name": {bad}}}', "name"),
        ]
        for path, text, param in cases:
            refused(raw.post(path, text), param=param)
    assert counts(server) == before
    for path in (
        "/assistants",
        f"/threads/{thread.id}/messages",
        f"/threads/{thread.id}/runs",
        "/vector_stores",
        f"/vector_stores/{store.id}/files",
    ):
        assert raw.get(path).status_code == 200
    # a run on the thread still works: nothing unencodable reached it
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"


def test_non_finite_numbers_are_refused(raw: Raw, client: OpenAI, server: Server) -> None:
    store = client.vector_stores.create(name="nan")
    file_id = client.files.create(file=("n.txt", b"numbers"), purpose="assistants").id
    before = counts(server)
    for literal in ("NaN", "Infinity", "-Infinity"):
        refused(
            raw.post(
                f"/vector_stores/{store.id}/files",
                f'{{"file_id": "{file_id}", "attributes": {{"score": {literal}}}}}',
            ),
            param="attributes.score",
        )
        refused(
            raw.post(
                f"/vector_stores/{store.id}/file_batches",
                f'{{"file_ids": ["{file_id}"], "attributes": {{"score": {literal}}}}}',
            ),
            param="attributes.score",
        )
        refused(
            raw.post("/assistants", f'{{"model": "echo", "temperature": {literal}}}'), param="temperature"
        )
        refused(
            raw.post(
                "/assistants",
                '{"model": "echo", "tools": [{"type": "function", "function": '
                f'{{"name": "f", "parameters": {{"maximum": {literal}}}}}}}]}}',
            ),
            param="tools[0].function.parameters.maximum",
        )
    assert counts(server) == before
    assert raw.post(f"/vector_stores/{store.id}/search", '{"query": "numbers"}').status_code == 200


def test_deep_nesting_is_refused(raw: Raw, server: Server) -> None:
    """Deeper than the responses that echo it could serialise: it would break every later list."""
    deep: Any = {}
    for _ in range(300):
        deep = {"a": deep}
    body = {"model": "echo", "tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}]}
    before = counts(server)
    assert "nest" in refused(raw.post("/assistants", json.dumps(body)))["message"]
    assert counts(server) == before
    assert raw.get("/assistants").status_code == 200


def test_strings_and_lists_are_capped(raw: Raw, client: OpenAI, assistant: Any, server: Server) -> None:
    thread = client.beta.threads.create()
    before = counts(server)
    big = "x" * 256_001
    cases = [
        ("/assistants", {"model": "m" * 257}, "model", "string_above_max_length"),
        ("/assistants", {"model": ""}, "model", "string_below_min_length"),
        ("/assistants", {"model": "echo", "name": "n" * 257}, "name", "string_above_max_length"),
        (
            "/assistants",
            {"model": "echo", "description": "d" * 513},
            "description",
            "string_above_max_length",
        ),
        ("/assistants", {"model": "echo", "instructions": big}, "instructions", "string_above_max_length"),
        (
            "/assistants",
            {"model": "echo", "tools": [{"type": "code_interpreter"}] * 129},
            "tools",
            "array_above_max_length",
        ),
        (
            "/assistants",
            {"model": "echo", "tools": [{"type": "function", "function": {"name": "f" * 65}}]},
            "tools[0].function.name",
            None,
        ),
        (
            "/assistants",
            {"model": "echo", "tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
            "tool_resources.code_interpreter.file_ids",
            "array_above_max_length",
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "model": "m" * 100_000},
            "model",
            "string_above_max_length",
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "instructions": big},
            "instructions",
            None,
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "additional_instructions": big},
            "additional_instructions",
            "string_above_max_length",
        ),
        (
            f"/threads/{thread.id}/runs",
            {"assistant_id": assistant.id, "additional_messages": [{"role": "user", "content": "x"}] * 33},
            "additional_messages",
            "array_above_max_length",
        ),
        (f"/threads/{thread.id}/messages", {"role": "user", "content": big}, "content", None),
        (
            f"/threads/{thread.id}/messages",
            {"role": "user", "content": [{"type": "text", "text": "x" * 200_000}] * 2},
            "content",
            None,
        ),
        (
            f"/threads/{thread.id}/messages",
            {"role": "user", "content": [{"type": "text", "text": "x"}] * 33},
            "content",
            "array_above_max_length",
        ),
        (
            f"/threads/{thread.id}/messages",
            {
                "role": "user",
                "content": "x",
                "attachments": [{"file_id": "file-x", "tools": [{"type": "code_interpreter"}]}] * 21,
            },
            "attachments",
            None,
        ),
        ("/threads", {"messages": [{"role": "user", "content": "x"}] * 33}, "messages", None),
        ("/vector_stores", {"name": "n" * 257}, "name", None),
        ("/threads/runs", {"assistant_id": "a" * 65}, "assistant_id", None),
    ]
    for path, body, param, code in cases:
        err = refused(raw.post(path, json.dumps(body)), param=param)
        assert code is None or err["code"] == code, err
        assert len(err["message"]) < 500  # never the text itself echoed back
    assert counts(server) == before


def test_integers_are_bounded(raw: Raw, client: OpenAI, assistant: Any, server: Server) -> None:
    thread = client.beta.threads.create()
    before = counts(server)
    for field, value in (
        ("max_prompt_tokens", 10**30),
        ("max_completion_tokens", 2**63),
        ("max_completion_tokens", 2**31),
        ("max_prompt_tokens", 0),
    ):
        for path in (f"/threads/{thread.id}/runs", "/threads/runs"):
            refused(raw.post(path, json.dumps({"assistant_id": assistant.id, field: value})), param=field)
    refused(
        raw.post(
            "/threads/runs",
            json.dumps(
                {
                    "assistant_id": assistant.id,
                    "truncation_strategy": {"type": "last_messages", "last_messages": 2**40},
                }
            ),
        ),
        param="truncation_strategy.last_messages",
    )
    refused(
        raw.post(
            "/assistants",
            json.dumps(
                {
                    "model": "echo",
                    "tools": [{"type": "file_search", "file_search": {"max_num_results": 10**20}}],
                }
            ),
        ),
        param="tools[0].file_search.max_num_results",
    )
    refused(
        raw.post(
            "/vector_stores", json.dumps({"expires_after": {"anchor": "last_active_at", "days": 2**63}})
        ),
        param="expires_after.days",
    )
    assert raw.get("/assistants?limit=100000000000000000000").status_code == 400
    assert counts(server) == before


def test_the_largest_accepted_integer_fits_the_column(client: OpenAI, assistant: Any) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        max_prompt_tokens=2**31 - 1,
        thread={"messages": [{"role": "user", "content": "fits"}]},
    )
    assert run.status == "completed" and run.max_prompt_tokens == 2**31 - 1
    assert client.beta.threads.runs.list(thread_id=run.thread_id).data[0].id == run.id


def test_lax_types_are_refused(raw: Raw, assistant: Any, server: Server) -> None:
    a = {"assistant_id": assistant.id}
    before = counts(server)
    for extra, param in (
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"parallel_tool_calls": "true"}, "parallel_tool_calls"),
        ({"max_completion_tokens": "500"}, "max_completion_tokens"),
        ({"temperature": "1"}, "temperature"),
        ({"metadata": {"k": 1}}, "metadata.k"),
    ):
        err = refused(raw.post("/threads/runs", json.dumps(a | extra)), param=param)
        assert err["code"] == "invalid_type", err
    assert counts(server) == before


def test_named_objects_must_exist(server: Server, raw: Raw, client: OpenAI, assistant: Any) -> None:
    """Files and vector stores named in a body: unknown or another project's ids are 404s."""
    other = server.client(KEY_B)
    theirs = other.files.create(file=("b.txt", b"project b"), purpose="assistants").id
    their_store = other.vector_stores.create(name="b").id
    mine = client.files.create(file=("a.txt", b"project a"), purpose="assistants").id
    thread = client.beta.threads.create()
    before = counts(server)
    for missing in ("file-nope", theirs):
        ci = {"code_interpreter": {"file_ids": [mine, missing]}}
        attachment = {
            "role": "user",
            "content": "x",
            "attachments": [{"file_id": missing, "tools": [{"type": "code_interpreter"}]}],
        }
        image = {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": missing}}]}
        cases = [
            ("/threads/runs", {"assistant_id": assistant.id, "tool_resources": ci}),
            ("/threads/runs", {"assistant_id": assistant.id, "thread": {"tool_resources": ci}}),
            ("/threads/runs", {"assistant_id": assistant.id, "thread": {"messages": [attachment]}}),
            ("/threads/runs", {"assistant_id": assistant.id, "thread": {"messages": [image]}}),
            (
                f"/threads/{thread.id}/runs",
                {"assistant_id": assistant.id, "additional_messages": [attachment]},
            ),
            (f"/threads/{thread.id}/messages", attachment),
            (f"/threads/{thread.id}/messages", image),
            (f"/threads/{thread.id}", {"tool_resources": ci}),
            ("/threads", {"tool_resources": ci}),
            ("/threads", {"messages": [attachment]}),
            ("/assistants", {"model": "echo", "tool_resources": ci}),
            (f"/assistants/{assistant.id}", {"tool_resources": ci}),
        ]
        for path, body in cases:
            err = refused(raw.post(path, json.dumps(body)), status=404)
            assert err["message"] == f"No file found with id '{missing}'.", (path, err)
    for missing in ("vs_nope", their_store):
        fs = {"file_search": {"vector_store_ids": [missing]}}
        for path, body in [
            ("/threads/runs", {"assistant_id": assistant.id, "tool_resources": fs}),
            ("/threads/runs", {"assistant_id": assistant.id, "thread": {"tool_resources": fs}}),
            ("/threads", {"tool_resources": fs}),
            ("/assistants", {"model": "echo", "tool_resources": fs}),
        ]:
            err = refused(raw.post(path, json.dumps(body)), status=404)
            assert err["message"] == f"No vector store found with id '{missing}'.", (path, err)
    assert counts(server) == before
    # the caller's own ids are fine, on the PostgreSQL fast path as on the other
    with pytest.raises(NotFoundError):
        client.beta.threads.create_and_run(
            assistant_id=assistant.id, tool_resources={"code_interpreter": {"file_ids": [theirs]}}
        )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, tool_resources={"code_interpreter": {"file_ids": [mine]}}
    )
    assert run.status == "completed"


def test_query_and_path_parameters(raw: Raw, client: OpenAI, assistant: Any, server: Server) -> None:
    thread = client.beta.threads.create()
    for path in (
        "/assistants?limit=20&limit=30",
        f"/threads/{thread.id}/messages?order=asc&order=desc",
        f"/threads/{thread.id}/runs?limit=1&limit=1",
        "/vector_stores?after=a&after=b",
        "/files?limit=1&limit=2",
    ):
        assert "more than once" in refused(raw.get(path))["message"]
    refused(raw.get("/threads/thread_%00x"), param="thread_id")
    refused(raw.get(f"/threads/{thread.id}/messages?run_id=run_%00"), param="run_id")
    refused(raw.get("/assistants?after=a%00"), param="after")
    # a list parameter may repeat
    include = "include[]=step_details.tool_calls[*].file_search.results[*].content"
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert raw.get(f"/threads/{thread.id}/runs/{run.id}/steps?{include}&{include}").status_code == 200


def test_an_assistant_keeps_its_model(raw: Raw, client: OpenAI) -> None:
    """`model: null` on update was a 500 from the column's NOT NULL (found by tests/test_fuzz.py)."""
    assistant = client.beta.assistants.create(model="echo")
    refused(raw.post(f"/assistants/{assistant.id}", '{"model": null}'), param="model")
    assert client.beta.assistants.retrieve(assistant.id).model == "echo"
