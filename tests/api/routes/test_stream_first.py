"""A streamed run's or response's first events are written before it is stored: when the event
log cannot take them, the request fails and nothing is stored, so the SDK's retry of the 500
makes no second run (in process, on SQLite, with an event log that refuses every write)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from api import response_jobs, streams
from api.main import create_app
from core.config import Settings
from core.db import migrate
from core.models import RUNS, THREADS
from core.responses import RESPONSES

HEADERS = {"Authorization": "Bearer sk-any", "OpenAI-Beta": "assistants=v2"}


class Refusing:
    async def publish(self, run_id: str, events: list[tuple[str, str]]) -> None:
        raise ConnectionError("the event log is down")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path}/a.db"
    migrate(url)
    settings = Settings(database_url=url, files_dir=str(tmp_path))
    with TestClient(create_app(settings, enqueue=lambda _: None), raise_server_exceptions=False) as made:
        made.app.state.url = url  # type: ignore[attr-defined]
        yield made


def counts(client: TestClient) -> dict[str, int]:
    engine = create_engine(client.app.state.url)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        found = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (RUNS, THREADS, RESPONSES)
        }
    engine.dispose()
    return found


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers=HEADERS)


def test_nothing_is_stored_when_the_first_events_cannot_be_written(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = post(client, "/v1/assistants", {"model": "echo"}).json()["id"]
    thread = post(client, "/v1/threads", {}).json()["id"]
    before = counts(client)
    monkeypatch.setattr(streams, "event_log", lambda: Refusing())
    monkeypatch.setattr(response_jobs, "event_log", lambda: Refusing())
    attempts = [
        ("/v1/threads/runs", {"assistant_id": assistant, "stream": True}),
        (f"/v1/threads/{thread}/runs", {"assistant_id": assistant, "stream": True}),
        ("/v1/responses", {"model": "echo", "input": "hi", "stream": True}),
        ("/v1/responses", {"model": "echo", "input": "hi", "stream": True, "background": True}),
    ]
    for path, body in attempts:
        answer = post(client, path, body)
        assert answer.status_code == 500, (path, answer.text)
        assert answer.json()["error"]["type"] == "server_error"
    assert counts(client) == before
    # not streamed: stored as before (the event log is not needed to create them)
    assert post(client, f"/v1/threads/{thread}/runs", {"assistant_id": assistant}).status_code == 200
    assert counts(client)["runs"] == before["runs"] + 1
