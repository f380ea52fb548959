"""The request layer in process (api/observe.py): the id on answers no route made (CatchAll's
500, the Gate's 413), and the access line and its switch."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Settings

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def app(tmp_path: Path, **settings: object) -> FastAPI:
    made = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/a.db", files_dir=str(tmp_path), **settings),  # type: ignore[arg-type]
        enqueue=lambda _: None,
    )

    async def boom() -> None:
        raise RuntimeError("boom")

    made.add_api_route("/boom", boom)
    return made


def test_a_crash_and_its_trace_share_the_request_id(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        answer = TestClient(app(tmp_path)).get("/boom")
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == 500 and REQUEST_ID.fullmatch(request_id)
    crash = [r for r in caplog.records if r.name == "assistd.api"]
    assert len(crash) == 1 and request_id in crash[0].getMessage() and crash[0].exc_info
    access = [r for r in caplog.records if r.name == "assistd.access"]
    assert [r.getMessage().split()[:3] for r in access] == [["GET", "/boom", "500"]]
    assert access[0].getMessage().endswith(request_id)


def test_the_gates_answers_carry_the_id(tmp_path: Path) -> None:
    client = TestClient(app(tmp_path, max_request_bytes=10))
    too_large = client.post("/v1/assistants", content=b"x" * 100, headers={"Authorization": "Bearer k"})
    assert too_large.status_code == 413 and REQUEST_ID.fullmatch(too_large.headers["x-request-id"])


def test_the_access_log_turns_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        answer = TestClient(app(tmp_path, access_log=False)).get("/healthz")
    assert answer.status_code == 200 and REQUEST_ID.fullmatch(answer.headers["x-request-id"])
    assert not [r for r in caplog.records if r.name == "assistd.access"]
