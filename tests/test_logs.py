"""The logs of `assistd serve` as an operator reads them: JSON lines (ASSISTD_LOG_FORMAT=json)
carrying the request's id, project and route, or the run's and response's ids; one access line
per request, off with ASSISTD_ACCESS_LOG=false; text lines by default."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import NotFoundError, OpenAI

from tests.conftest import ScriptedModel, Server, start_embedded, stop

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def serve(model: ScriptedModel, tmp: Path, env: dict[str, str]) -> Iterator[tuple[Server, Path]]:
    server = start_embedded(model, tmp, extra=env)
    yield server, tmp / "serve.log"
    stop(server.procs)


@pytest.fixture(scope="module")
def json_logs(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve(model_server, tmp_path_factory.mktemp("json-logs"), {"ASSISTD_LOG_FORMAT": "json"})


@pytest.fixture(scope="module")
def text_logs(model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve(model_server, tmp_path_factory.mktemp("text-logs"), {})


def lines_until(log: Path, found: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
    """The log's lines once `found` holds of them (a line is written as its answer ends, which
    may be just after the client has read it)."""
    deadline = time.time() + timeout
    while True:
        lines = log.read_text().splitlines()
        if found(lines) or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_json_lines_carry_the_request_and_the_run(json_logs: tuple[Server, Path]) -> None:
    server, log = json_logs
    client: OpenAI = server.client()
    assistant = client.beta.assistants.create(
        model="echo", name="logged", extra_headers={"X-Client-Request-Id": "trace-42"}
    )
    with pytest.raises(NotFoundError) as missing:
        client.beta.assistants.retrieve("asst_missing")
    # a model that refuses the request: the worker logs the run's failure
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, model="error:400", thread={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert run.status == "failed"
    wanted = {assistant._request_id, missing.value.request_id}

    def seen(lines: list[str]) -> bool:
        return all(any(str(w) in line for line in lines) for w in wanted) and run.id in "".join(lines)

    records = [json.loads(line) for line in lines_until(log, seen)]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = {r["request_id"]: r for r in records if r["logger"] == "assistd.access"}
    created = access[assistant._request_id]
    assert created["method"] == "POST" and created["path"] == "/v1/assistants" and created["status"] == 200
    assert created["route"] == "/v1/assistants" and created["project"] == "proj_a"
    assert created["client_request_id"] == "trace-42" and created["duration_ms"] >= 0
    assert created["time"].endswith("Z") and created["level"] == "INFO"
    not_found = access[str(missing.value.request_id)]
    assert not_found["status"] == 404 and not_found["route"] == "/v1/assistants/{assistant_id}"
    assert not_found["path"] == "/v1/assistants/asst_missing"
    about_run = [r for r in records if r.get("run_id") == run.id]
    assert about_run and all(r["logger"].startswith("assistd.worker") for r in about_run)
    assert any(r["level"] == "WARNING" and r["project"] == "proj_a" for r in about_run)


def test_json_lines_carry_the_response(json_logs: tuple[Server, Path]) -> None:
    server, log = json_logs
    response = server.client().responses.create(model="error:400", input="hi")
    assert response.status == "failed"
    records = [
        json.loads(line) for line in lines_until(log, lambda lines: any(response.id in x for x in lines))
    ]
    about = [r for r in records if r.get("response_id") == response.id]
    assert about and about[0]["logger"] == "assistd.worker" and about[0]["project"] == "proj_a"


def test_text_is_the_default(text_logs: tuple[Server, Path]) -> None:
    server, log = text_logs
    client = server.client()
    created = client.beta.assistants.create(model="echo", name="logged")
    lines = lines_until(log, lambda lines: any(str(created._request_id) in x for x in lines))
    access = [x for x in lines if str(created._request_id) in x]
    assert len(access) == 1 and TEXT_LINE.match(access[0])
    assert re.search(r" INFO assistd\.access: POST /v1/assistants 200 \d+\.\dms req_[0-9a-f]{32}$", access[0])
    assert not any(line.startswith("{") for line in lines)


def test_the_access_log_turns_off(model_server: ScriptedModel, tmp_path: Path) -> None:
    for server, log in serve(model_server, tmp_path, {"ASSISTD_ACCESS_LOG": "false"}):
        client = server.client()
        client.beta.assistants.create(model="echo", name="quiet")
        with pytest.raises(NotFoundError):
            client.beta.assistants.retrieve("asst_missing")
        time.sleep(0.3)  # a line would be written as the answer ends
        assert not [line for line in log.read_text().splitlines() if "assistd.access" in line]
