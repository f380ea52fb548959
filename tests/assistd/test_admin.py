"""`assistd runs ...` and `assistd projects usage` as an operator runs them: subprocesses against a
database `assistd migrate` made, with rows put in directly (SQLite; one test on PostgreSQL)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, SQLModel

from core.db import sync_engine
from core.ids import now
from core.models import RUNS, STEPS, Run, RunStep
from core.responses import Response
from tests.conftest import REDIS_URL, fresh_pg_database, unavailable
from tests.procs import TEST_NAMESPACE, redis_available
from tests.utils.cli import assistd as run_assistd

HOUR = 3600.0
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def assistd(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_assistd(*args, env={"ASSISTD_DATABASE_URL": url} | (env or {}))


def run(rid: str, status: str, project: str = "alpha", age: float = 0, **values: Any) -> Run:
    return Run(
        id=rid,
        project=project,
        thread_id=f"thread_{rid}",
        assistant_id="asst_1",
        model="echo",
        status=status,
        created_at=now() - age,
        **values,
    )


@contextmanager
def engine(url: str) -> Iterator[Engine]:
    made = sync_engine(url)
    try:
        yield made
    finally:
        made.dispose()


def put(url: str, *rows: SQLModel) -> None:
    with engine(url) as e, Session(e) as session:
        session.add_all(rows)
        session.commit()


def one(url: str, query: Any) -> Any:
    with engine(url) as e, e.connect() as conn:
        return conn.execute(query).scalar_one()


def status_of(url: str, run_id: str) -> str:
    return str(one(url, select(RUNS.c.status).where(RUNS.c.id == run_id)))


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/admin.db"
    assert assistd(url, "migrate").returncode == 0
    put(
        url,
        run("run_old", "completed", age=2 * HOUR, usage=USAGE),
        run("run_queued", "queued", age=60),
        run(
            "run_waiting", "requires_action", project="beta", required_action={"type": "submit_tool_outputs"}
        ),
        RunStep(
            id="step_1",
            project="beta",
            run_id="run_waiting",
            thread_id="thread_run_waiting",
            assistant_id="asst_1",
            type="tool_calls",
        ),
        run("run_ancient", "completed", project="beta", age=30 * 24 * HOUR, usage=USAGE),
        Response(
            id="resp_1",
            project="beta",
            model="echo",
            status="completed",
            usage={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
        ),  # fmt: skip
    )
    return url


def test_runs_list_filters_and_prints_a_table_or_json(db: str) -> None:
    out = assistd(db, "runs", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "PROJECT", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["run_waiting", "run_queued", "run_old", "run_ancient"]

    def listed(*args: str) -> list[str]:
        got = assistd(db, "runs", "list", "--json", *args)
        assert got.returncode == 0, got.stderr
        return [r["id"] for r in json.loads(got.stdout)]

    assert listed("--status", "queued") == ["run_queued"]
    assert listed("--project", "beta") == ["run_waiting", "run_ancient"]
    assert listed("--older-than", "30m") == ["run_old", "run_ancient"]
    assert listed("--older-than", "1d", "--project", "beta") == ["run_ancient"]
    assert listed("--limit", "1") == ["run_waiting"]
    bad = assistd(db, "runs", "list", "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    typo = assistd(db, "runs", "list", "--status", "complete")
    assert typo.returncode == 2 and "not a run status: 'complete' (one of queued, in_progress" in typo.stderr


def test_runs_show(db: str) -> None:
    out = assistd(db, "runs", "show", "run_old")
    assert out.returncode == 0, out.stderr
    fields = dict(line.split(None, 1) for line in out.stdout.splitlines()[1:] if len(line.split()) > 1)
    assert fields["status"] == "completed" and fields["project"] == "alpha"
    assert json.loads(fields["usage"]) == USAGE
    shown = json.loads(assistd(db, "runs", "show", "run_old", "--json").stdout)
    assert shown["id"] == "run_old" and isinstance(shown["created_at"], int) and shown["usage"] == USAGE
    missing = assistd(db, "runs", "show", "run_nope")
    assert missing.returncode == 1 and "no run run_nope" in missing.stderr


def test_runs_cancel_as_the_api_does(db: str) -> None:
    out = assistd(db, "runs", "cancel", "run_queued")
    assert out.returncode == 0, out.stderr
    assert "cancelling" in out.stdout and status_of(db, "run_queued") == "cancelling"
    # waiting for tool outputs: cancelled at once, with its pending step
    done = json.loads(assistd(db, "runs", "cancel", "run_waiting", "--json").stdout)
    assert done["status"] == "cancelled" and done["cancelled_at"] and done["required_action"] is None
    assert one(db, select(STEPS.c.status)) == "cancelled"
    refused = assistd(db, "runs", "cancel", "run_old")
    assert refused.returncode == 1 and "cannot cancel run run_old with status 'completed'" in refused.stderr


def test_projects_usage(db: str) -> None:
    week = json.loads(assistd(db, "projects", "usage", "--json").stdout)
    assert week == [
        {
            "project": "alpha",
            "runs": 2,
            "responses": 0,
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
        },
        {
            "project": "beta",
            "runs": 1,
            "responses": 1,
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
        },
    ]
    month = {
        r["project"]: r
        for r in json.loads(assistd(db, "projects", "usage", "--since", "60d", "--json").stdout)
    }
    assert month["beta"]["runs"] == 2 and month["beta"]["total_tokens"] == 135
    text = assistd(db, "projects", "usage").stdout.splitlines()
    assert text[0].split()[:3] == ["PROJECT", "RUNS", "RESPONSES"] and text[2].split()[:3] == [
        "beta",
        "1",
        "1",
    ]


def test_cancel_on_postgres_sends_the_run_to_the_workers(tmp_path: Path) -> None:
    if not redis_available():
        unavailable("Redis")
    import redis

    url = fresh_pg_database()
    assert assistd(url, "migrate").returncode == 0
    put(url, run("run_queued", "queued", usage=USAGE), run("run_busy", "in_progress", owner="w1"))
    namespace = TEST_NAMESPACE + secrets.token_hex(4)
    env = {"ASSISTD_REDIS_URL": REDIS_URL, "ASSISTD_REDIS_NAMESPACE": namespace}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for run_id in ("run_queued", "run_busy"):
            out = assistd(url, "runs", "cancel", run_id, env=env)
            assert out.returncode == 0, out.stderr
            assert status_of(url, run_id) == "cancelling"
        assert client.llen(f"{namespace}:runs") == 2  # a worker finishes each
        listed = json.loads(assistd(url, "runs", "list", "--status", "cancelling", "--json").stdout)
        assert {r["id"] for r in listed} == {"run_queued", "run_busy"}
        usage = json.loads(assistd(url, "projects", "usage", "--json").stdout)
        assert usage[0]["project"] == "alpha" and usage[0]["runs"] == 2 and usage[0]["total_tokens"] == 15
    finally:
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()
