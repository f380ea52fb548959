"""OpenAI's error envelope (api/errors.py): the error tree, validation errors in OpenAI's words,
and the handlers every request's error goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from starlette.types import Message, Receive, Scope, Send

from api.errors import (
    APIError,
    BadRequest,
    CatchAll,
    NotFound,
    ServerError,
    Unauthorized,
    install,
    validation_error,
)
from api.schemas import AssistantCreate, RunCreate

ENVELOPE_KEYS = {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (BadRequest("bad", param="limit", code="invalid_value"), 400, "invalid_request_error"),
        (Unauthorized("who?", code="invalid_api_key"), 401, "invalid_request_error"),
        (NotFound.of("assistant", "asst_1"), 404, "invalid_request_error"),
        (ServerError("oops"), 500, "server_error"),
    ],
)
def test_every_error_has_openais_envelope(error: APIError, status: int, kind: str) -> None:
    body = error.body()
    assert list(body) == ["error"] and set(body["error"]) == ENVELOPE_KEYS
    assert (error.status, body["error"]["type"]) == (status, kind)
    assert body["error"]["message"] == str(error)


def test_not_found_names_the_object() -> None:
    assert NotFound.of("assistant", "asst_1").body()["error"] == {
        "message": "No assistant found with id 'asst_1'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def translated(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """The error FastAPI's validation of `data` as a request body would answer."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = [err | {"loc": ("body", *err["loc"])} for err in caught.value.errors()]
    error = validation_error(RequestValidationError(errors, body=data))
    assert error.status == 400
    return error.body()["error"]


@pytest.mark.parametrize(
    ("model", "data", "param", "code"),
    [
        (AssistantCreate, {"name": "x"}, "model", "missing_required_parameter"),
        (AssistantCreate, {"model": "m", "bogus": 1}, "bogus", "unknown_parameter"),
        (AssistantCreate, {"model": "m", "temperature": "hot"}, "temperature", "invalid_type"),
        (AssistantCreate, {"model": "m", "temperature": 3}, "temperature", "decimal_above_max_value"),
        (
            RunCreate,
            {"assistant_id": "a", "max_completion_tokens": 2**31},
            "max_completion_tokens",
            "integer_above_max_value",
        ),
        # the union member's tag ("function") is not part of the parameter's path
        (
            AssistantCreate,
            {"model": "m", "tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
            "invalid_value",
        ),
        # the whole-body scan's path continues the parameter's
        (AssistantCreate, {"model": "m", "metadata": {"k": "v\x00"}}, "metadata.k", "invalid_value"),
    ],
)
def test_validation_errors_in_openais_words(
    model: type[BaseModel], data: dict[str, Any], param: str, code: str
) -> None:
    error = translated(model, data)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert f"'{param}'" in error["message"]


def test_a_too_long_string_is_measured_not_echoed() -> None:
    error = translated(AssistantCreate, {"model": "m", "name": "secret" * 50})
    assert error["code"] == "string_above_max_length" and "length 300" in error["message"]
    assert "secret" not in error["message"]


def test_unparsable_json_gets_openais_hint() -> None:
    error = validation_error(
        RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error", "input": {}}], body="{"
        )
    )
    assert error.status == 400 and error.param is None
    assert error.message.startswith("We could not parse the JSON body of your request.")


def app_with_errors() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/v1/thing")
    async def thing() -> None:
        raise NotFound.of("thing", "t_1")

    return app


def test_installed_handlers_answer_in_the_envelope() -> None:
    with TestClient(app_with_errors()) as client:
        raised = client.get("/v1/thing")
        assert (
            raised.status_code == 404 and raised.json()["error"]["message"] == "No thing found with id 't_1'."
        )
        unknown = client.get("/v1/nowhere")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"
        wrong_method = client.post("/v1/thing")
        assert wrong_method.status_code == 400
        assert wrong_method.json()["error"]["message"] == "Invalid method for URL (POST /v1/thing)"


def asgi_call(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(CatchAll(app)(scope, receive, send))
    return sent


def test_a_crash_before_the_response_answers_a_500_envelope() -> None:
    async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    sent = asgi_call(crashing)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 500
    assert b'"type":"server_error"' in sent[1]["body"] and b"boom" not in sent[1]["body"]


def test_a_crash_after_the_response_started_is_raised() -> None:
    async def half_sent(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asgi_call(half_sent)
