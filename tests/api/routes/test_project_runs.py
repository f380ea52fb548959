"""GET /v1/assistd/runs and /v1/assistd/threads (api/routes/project_runs.py) in process, on SQLite
and PostgreSQL: a project's runs across its threads, and its threads, never another project's;
OpenAI's list shape and cursors; the status, assistant and time filters; bad parameters as 400s in
OpenAI's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai.types.beta import Thread as WireThread
from openai.types.beta.threads import Run as WireRun
from sqlmodel import Session

from api.main import create_app
from core.config import Settings
from core.db import migrate, sync_engine
from core.models import Run, Thread
from tests.conftest import fresh_pg_database

KEY_A, KEY_B = "sk-runs-a", "sk-runs-b"
T0 = 1_800_000_000
# (id, project, thread, assistant, status, created_at), oldest first: list order is creation order
RUNS = [
    ("run_a1", "proj_a", "thread_1", "asst_1", "completed", T0),
    ("run_b1", "proj_b", "thread_9", "asst_9", "completed", T0 + 1),
    ("run_a2", "proj_a", "thread_2", "asst_2", "failed", T0 + 2),
    ("run_a3", "proj_a", "thread_1", "asst_1", "completed", T0 + 3),
    ("run_a4", "proj_a", "thread_3", "asst_1", "in_progress", T0 + 4),
    ("run_a5", "proj_a", "thread_2", "asst_2", "queued", T0 + 5),
]
# (id, project), oldest first
THREADS = [("thread_1", "proj_a"), ("thread_9", "proj_b"), ("thread_2", "proj_a"), ("thread_3", "proj_a")]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("project-runs")
    url = f"sqlite:///{tmp}/runs.db" if request.param == "sqlite" else fresh_pg_database()
    migrate(url)
    engine = sync_engine(url)
    with Session(engine) as session:
        for n, (tid, project) in enumerate(THREADS):
            session.add(Thread(id=tid, project=project, created_at=T0 - 10 + n, meta={"title": tid}))
            session.commit()
        for rid, project, thread, assistant, status, created in RUNS:
            session.add(
                Run(
                    id=rid,
                    project=project,
                    thread_id=thread,
                    assistant_id=assistant,
                    model="echo",
                    status=status,
                    created_at=created,
                    usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
                    if status == "completed"
                    else None,
                )
            )
            session.commit()  # one at a time: `seq` follows creation
    engine.dispose()
    settings = Settings(database_url=url, files_dir=str(tmp), api_keys=f"{KEY_A}=proj_a,{KEY_B}=proj_b")
    with TestClient(create_app(settings, enqueue=lambda _: None)) as made:
        yield made


def listed(client: TestClient, key: str = KEY_A, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/assistd/runs", params=params, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["data"]]


def refused(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/assistd/runs", params=params, headers={"Authorization": f"Bearer {KEY_A}"})
    assert answer.status_code == 400, answer.text
    error: dict[str, Any] = answer.json()["error"]
    return error


def test_a_projects_runs_across_its_threads_and_no_others(client: TestClient) -> None:
    page = listed(client)
    assert ids(page) == ["run_a5", "run_a4", "run_a3", "run_a2", "run_a1"]
    assert {r["thread_id"] for r in page["data"]} == {"thread_1", "thread_2", "thread_3"}
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list", "run_a5", "run_a1", False,
    )  # fmt: skip
    assert ids(listed(client, KEY_B)) == ["run_b1"]
    # each item is the run object of the Assistants API
    done = WireRun.model_validate(page["data"][2])
    assert done.object == "thread.run" and done.created_at == T0 + 3 and done.usage is not None
    assert done.usage.total_tokens == 5 and page["data"][2]["metadata"] == {}
    # another project's run is no cursor here
    assert refused(client, after="run_b1")["param"] == "after"
    assert client.get("/v1/assistd/runs").status_code == 401


def test_cursor_pages_both_ways(client: TestClient) -> None:
    first = listed(client, limit=2)
    assert ids(first) == ["run_a5", "run_a4"] and first["has_more"] is True
    second = listed(client, limit=2, after=first["last_id"])
    assert ids(second) == ["run_a3", "run_a2"] and second["has_more"] is True
    third = listed(client, limit=2, after=second["last_id"])
    assert ids(third) == ["run_a1"] and third["has_more"] is False
    assert ids(listed(client, limit=2, before="run_a2")) == ["run_a4", "run_a3"]
    assert ids(listed(client, order="asc", limit=3)) == ["run_a1", "run_a2", "run_a3"]


def test_filters(client: TestClient) -> None:
    assert ids(listed(client, status="completed")) == ["run_a3", "run_a1"]
    assert ids(listed(client, assistant_id="asst_2")) == ["run_a5", "run_a2"]
    assert ids(listed(client, created_after=T0 + 2)) == ["run_a5", "run_a4", "run_a3"]
    assert ids(listed(client, created_before=T0 + 2, status="completed")) == ["run_a1"]
    assert ids(listed(client, status="expired")) == []
    # a cursor that has left the filter since (its run moved on) still pages on
    assert ids(listed(client, status="completed", after="run_a4")) == ["run_a3", "run_a1"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "newest"}, "order"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": 10**30}, "created_before"),
        ({"after": "run_nope"}, "after"),
        ({"status": ["queued", "failed"]}, "status"),
    ],
)
def test_bad_parameters_are_400s_in_openais_envelope(
    client: TestClient, params: dict[str, Any], param: str
) -> None:
    error = refused(client, **params)
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


def test_the_runs_view_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/a.db", files_dir=str(tmp_path))
    app = create_app(settings, enqueue=lambda _: None)
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert "/v1/assistd/runs" in paths and "/v1/assistd/threads" in paths


def test_a_projects_threads_and_no_others(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {KEY_A}"}

    def threads(key: str = KEY_A, **params: Any) -> dict[str, Any]:
        answer = client.get("/v1/assistd/threads", params=params, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    page = threads()
    assert ids(page) == ["thread_3", "thread_2", "thread_1"]
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list", "thread_3", "thread_1", False,
    )  # fmt: skip
    made = WireThread.model_validate(page["data"][0])
    assert (
        made.object == "thread" and made.created_at == T0 - 10 + 3 and made.metadata == {"title": "thread_3"}
    )
    assert ids(threads(KEY_B)) == ["thread_9"]
    first = threads(limit=2)
    assert ids(first) == ["thread_3", "thread_2"] and first["has_more"] is True
    assert ids(threads(limit=2, after=first["last_id"])) == ["thread_1"]
    assert ids(threads(order="asc", before="thread_3")) == ["thread_1", "thread_2"]
    # another project's thread is no cursor here; bad parameters are OpenAI's 400s
    for params, param in (
        ({"after": "thread_9"}, "after"),
        ({"limit": 0}, "limit"),
        ({"order": "new"}, "order"),
    ):
        answer = client.get("/v1/assistd/threads", params=params, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    assert client.get("/v1/assistd/threads").status_code == 401
