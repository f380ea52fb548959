"""Distributed mode with real processes: many concurrent runs, dead workers, restarts."""

from __future__ import annotations

import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from tests import procs
from tests.conftest import (
    KEY_A,
    ScriptedModel,
    Server,
    fresh_pg_database,
    spawn,
    start_distributed,
    start_embedded,
    stop,
    unavailable,
)


def test_200_concurrent_runs_each_one_message(distributed: Server) -> None:
    client = distributed.client(max_retries=0)
    assistant = client.beta.assistants.create(model="echo", instructions="be quick")

    def one(i: int) -> tuple[str, str]:
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": f"run {i}"}]}
        )
        return run.id, run.thread_id

    with ThreadPoolExecutor(16) as pool:
        created = list(pool.map(one, range(200)))

    def check(ids: tuple[str, str]) -> list[Any]:
        run = client.beta.threads.runs.poll(ids[0], thread_id=ids[1], poll_interval_ms=100)
        assert run.status == "completed", run
        return client.beta.threads.messages.list(thread_id=ids[1]).data

    with ThreadPoolExecutor(16) as pool:
        threads = list(pool.map(check, created))
    for i, messages in enumerate(threads):
        assert [m.role for m in messages] == ["assistant", "user"]
        assert messages[0].content[0].text.value == f"You said: run {i}"


def _wait_status(client: OpenAI, run: Any, status: str, timeout: float = 30) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        if got.status == status:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{run.id} never reached {status} (last: {got.status})")


def test_killed_worker_run_is_finished_by_another(model_server: ScriptedModel, tmp_path: Path) -> None:
    server = start_distributed(model_server, tmp_path, workers=1)
    try:
        client = server.client()
        assistant = client.beta.assistants.create(model="slow:1500")
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "survive"}]}
        )
        _wait_status(client, run, "in_progress")
        server.procs[1].send_signal(signal.SIGKILL)
        server.procs[1].wait()
        # with no worker at all, the API keeps accepting runs; they wait in the queue
        queued = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "waiting"}]}
        )
        time.sleep(0.5)
        assert client.beta.threads.runs.retrieve(queued.id, thread_id=queued.thread_id).status == "queued"
        server.procs.append(
            spawn([sys.executable, "-m", "assistd", "worker"], server.env, tmp_path / "w2.log")
        )
        for r in (run, queued):
            done = client.beta.threads.runs.poll(r.id, thread_id=r.thread_id, poll_interval_ms=100)
            assert done.status == "completed"
            msgs = client.beta.threads.messages.list(thread_id=r.thread_id)
            assert [m.role for m in msgs.data] == ["assistant", "user"]
    finally:
        stop(server.procs)


def test_sigterm_hands_runs_back(model_server: ScriptedModel, tmp_path: Path) -> None:
    server = start_distributed(model_server, tmp_path, workers=1)
    try:
        client = server.client()
        assistant = client.beta.assistants.create(model="slow:3000")
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hand back"}]}
        )
        _wait_status(client, run, "in_progress")
        server.procs[1].send_signal(signal.SIGTERM)
        assert server.procs[1].wait(timeout=15) == 0
        _wait_status(client, run, "queued", timeout=2)  # released at once, not after the lease
        server.procs.append(
            spawn([sys.executable, "-m", "assistd", "worker"], server.env, tmp_path / "w2.log")
        )
        assert client.beta.threads.runs.poll(run.id, thread_id=run.thread_id).status == "completed"
    finally:
        stop(server.procs)


def test_embedded_restart_picks_up_unfinished_runs(model_server: ScriptedModel, tmp_path: Path) -> None:
    server = start_embedded(model_server, tmp_path)
    try:
        client = server.client()
        assistant = client.beta.assistants.create(model="slow:2000")
        run = client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "again"}]}
        )
        _wait_status(client, run, "in_progress")
        server.procs[0].send_signal(signal.SIGKILL)
        server.procs[0].wait()
    finally:
        stop(server.procs)
    again = start_embedded(model_server, tmp_path)
    try:
        client = again.client()
        done = client.beta.threads.runs.poll(run.id, thread_id=run.thread_id, poll_interval_ms=100)
        assert done.status == "completed"
        assert [m.role for m in client.beta.threads.messages.list(thread_id=run.thread_id).data] == [
            "assistant",
            "user",
        ]
    finally:
        stop(again.procs)


def test_worker_killed_between_tool_rounds(model_server: ScriptedModel, tmp_path: Path) -> None:
    server = start_distributed(model_server, tmp_path, workers=1)
    try:
        client = server.client()
        model = model_server.script(
            f"between-{time.time()}",
            [
                {"tool_calls": [{"id": "call_k", "name": "f", "arguments": "{}"}]},
                {"content": "finished once", "expect_tool_results": [["call_k", "42"]]},
            ],
        )
        tool = {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
        }
        assistant = client.beta.assistants.create(model=model, tools=[tool])
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "go"}]}
        )
        assert run.status == "requires_action"
        server.procs[1].send_signal(signal.SIGKILL)
        server.procs[1].wait()
        queued = client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": "call_k", "output": "42"}]
        )
        assert queued.status == "queued"
        server.procs.append(
            spawn([sys.executable, "-m", "assistd", "worker"], server.env, tmp_path / "w2.log")
        )
        done = client.beta.threads.runs.poll(run.id, thread_id=run.thread_id, poll_interval_ms=100)
        assert done.status == "completed", done.last_error
        texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread_id=run.thread_id)]
        assert texts == ["finished once", "go"]
    finally:
        stop(server.procs)


def test_stream_survives_a_killed_worker(model_server: ScriptedModel, tmp_path: Path) -> None:
    """A worker dies half-way through a streamed answer: the stream closes that attempt's message
    as incomplete, then the next worker's answer follows; one message is stored."""
    server = start_distributed(model_server, tmp_path, workers=1)
    try:
        client = server.client()
        assistant = client.beta.assistants.create(model="pause:3000")
        body = {
            "assistant_id": assistant.id,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": "twice"}]},
        }
        names: list[str] = []
        datas: list[dict[str, Any]] = []
        with httpx.stream(
            "POST",
            f"{server.url}/v1/threads/runs",
            json=body,
            timeout=60,
            headers={"Authorization": f"Bearer {KEY_A}"},
        ) as resp:
            name = ""
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: ") and name != "done":
                    names.append(name)
                    datas.append(json.loads(line.removeprefix("data: ")))
                    if name == "thread.message.delta" and names.count(name) == 1:
                        server.procs[1].send_signal(signal.SIGKILL)
                        server.procs[1].wait()
                        server.procs.append(
                            spawn(
                                [sys.executable, "-m", "assistd", "worker"], server.env, tmp_path / "w2.log"
                            )
                        )
        created = [d["id"] for n, d in zip(names, datas) if n == "thread.message.created"]
        assert len(created) == 2, names
        closed = {
            d["id"]: n
            for n, d in zip(names, datas)
            if n.startswith("thread.message.") and n.endswith(("completed", "incomplete"))
        }
        assert closed == {created[0]: "thread.message.incomplete", created[1]: "thread.message.completed"}
        assert names.index("thread.message.incomplete") < names.index(
            "thread.message.created", names.index("thread.message.incomplete")
        )
        assert names[-1] == "thread.run.completed"
        run_id = datas[names.index("thread.run.created")]["id"]
        thread_id = datas[0]["id"]
        stored = client.beta.threads.messages.list(thread_id=thread_id).data
        assert [m.id for m in stored if m.role == "assistant"] == [created[1]]
        assert client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status == "completed"
    finally:
        stop(server.procs)


def test_over_unix_sockets(model_server: ScriptedModel, tmp_path: Path) -> None:
    """PostgreSQL and Redis reached through their Unix sockets (URLs the README shows): runs and
    responses (plain, streamed, background) end as they do over TCP."""
    import redis

    try:
        redis_url, redis_proc = procs.unix_redis(tmp_path)
        database_url = procs.over_unix_socket(fresh_pg_database())
    except procs.ServiceMissing as exc:
        unavailable(str(exc))
        raise
    server = start_distributed(
        model_server, tmp_path, workers=1, redis_url=redis_url, database_url=database_url
    )
    try:
        client = server.client(max_retries=0)
        assert client.responses.create(model="echo", input="plain").output_text == "You said: plain"
        with client.responses.stream(model="words:3", input="streamed") as stream:
            assert stream.get_final_response().output_text == "w1 w2 w3"
        queued = client.responses.create(model="echo", input="later", background=True)
        deadline = time.time() + 30
        while (done := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
            assert time.time() < deadline, done
            time.sleep(0.05)
        assert done.output_text == "You said: later"
        assistant = client.beta.assistants.create(model="echo")
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert run.status == "completed", run
        # the queue and the event log were the socket's Redis (it has no TCP port)
        with redis.Redis.from_url(redis_url) as r:
            stats = r.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 8 and stats["cmdstat_xadd"]["calls"] >= 1
    finally:
        stop(server.procs)
        stop([redis_proc])
