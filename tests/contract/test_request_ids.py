"""Request ids through the official SDK: every answer carries `x-request-id` in OpenAI's format
(`req_` and 32 hex digits), which the SDK shows as `_request_id` on results and `request_id` on
errors: the Gate's 401s, the routes' 404s and 400s, and streams included."""

from __future__ import annotations

import re

import httpx
import pytest
from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

from tests.conftest import Server

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def test_results_carry_a_request_id(client: OpenAI) -> None:
    created = client.beta.assistants.create(model="echo", name="ids")
    listed = client.beta.assistants.list(limit=1)
    retrieved = client.beta.assistants.retrieve(created.id)
    ids = [created._request_id, listed._request_id, retrieved._request_id]
    assert all(REQUEST_ID.fullmatch(str(i)) for i in ids), ids
    assert len(set(ids)) == 3  # one per request


def test_errors_carry_a_request_id(server: Server, client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.beta.assistants.retrieve("asst_missing")
    with pytest.raises(BadRequestError) as bad:
        client.beta.assistants.create(model="echo", temperature=9)
    with pytest.raises(AuthenticationError) as refused:  # answered by the Gate, before any route
        server.client("sk-wrong").beta.assistants.list()
    for caught in (missing, bad, refused):
        assert REQUEST_ID.fullmatch(str(caught.value.request_id)), caught.value
    unmatched = httpx.get(
        f"{server.url}/v1/nothing-here", headers={"Authorization": "Bearer sk-test-project-a"}
    )
    assert unmatched.status_code == 404 and REQUEST_ID.fullmatch(unmatched.headers["x-request-id"])


def test_a_stream_carries_a_request_id(client: OpenAI) -> None:
    with client.responses.create(model="words:3", input="x", stream=True) as stream:
        events = [event.type for event in stream]
        assert REQUEST_ID.fullmatch(stream.response.headers["x-request-id"])
    assert events[-1] == "response.completed"


def test_health_checks_carry_a_request_id(server: Server) -> None:
    for path in ("/healthz", "/readyz"):
        assert REQUEST_ID.fullmatch(httpx.get(server.url + path).headers["x-request-id"])
