"""Chaos: 500 runs (plain and with a function call) and 100 background responses while workers
are SIGKILLed at random and restarted and Redis is restarted once. Every run and response must
end `completed`, executed exactly once. Run on PostgreSQL directly, and (ASSISTD_CHAOS_PGBOUNCER=1)
through PgBouncer in transaction pooling mode: a killed worker's server connections go back to
PgBouncer's pool."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openai import OpenAI

from tests.conftest import ScriptedModel, Server, spawn, start_distributed, stop, unavailable
from tests.procs import free_port, redis_available

PLAIN, WITH_TOOL = 400, 100
RESPONSES = 100  # background responses, created alongside the runs
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


def start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = spawn(args, {}, log)
    deadline = time.time() + 10
    while not redis_available(f"redis://127.0.0.1:{port}/0"):
        assert time.time() < deadline, "redis did not start"
        time.sleep(0.05)
    return proc


class Chaos(threading.Thread):
    """Kills a random worker every 0.3-1 s and starts a new one; restarts Redis once."""

    def __init__(self, server: Server, redis: list[subprocess.Popen[bytes]], port: int, tmp: Path) -> None:
        super().__init__(daemon=True)
        self.server, self.redis, self.port, self.tmp = server, redis, port, tmp
        self.stopping = threading.Event()
        self.kills = self.redis_restarts = 0

    def run(self) -> None:
        started = time.time()
        while not self.stopping.wait(random.uniform(0.5, 1.5)):
            workers = [p for p in self.server.procs[1:] if p.poll() is None]
            victim = random.choice(workers)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.kills += 1
            log = self.tmp / f"worker-{self.kills}.log"
            self.server.procs.append(spawn([sys.executable, "-m", "assistd", "worker"], self.server.env, log))
            if not self.redis_restarts and time.time() - started > 3:
                self.redis[0].send_signal(signal.SIGKILL)
                self.redis[0].wait()
                self.redis[0] = start_redis(self.port, self.tmp / "redis-2.log")
                self.redis_restarts += 1


def drive(client: OpenAI, created: list[Any], deadline: float) -> dict[str, Any]:
    """Poll every run to its end, answering tool calls; the final run objects."""
    done: dict[str, Any] = {}
    while len(done) < len(created) and time.time() < deadline:
        for run in created:
            if run.id in done:
                continue
            got = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
            if got.status == "requires_action":
                calls = got.required_action.submit_tool_outputs.tool_calls
                client.beta.threads.runs.submit_tool_outputs(
                    run_id=run.id,
                    thread_id=run.thread_id,
                    tool_outputs=[{"tool_call_id": c.id, "output": f"out-{c.id}"} for c in calls],
                )
            elif got.status not in ("queued", "in_progress", "cancelling"):
                done[run.id] = got
        time.sleep(0.2)
    return done


def drive_responses(client: OpenAI, created: list[Any], deadline: float) -> dict[str, Any]:
    """Poll every background response to its end; the final response objects."""
    done: dict[str, Any] = {}
    while len(done) < len(created) and time.time() < deadline:
        for response in created:
            if response.id not in done:
                got = client.responses.retrieve(response.id)
                if got.status not in ("queued", "in_progress"):
                    done[response.id] = got
        time.sleep(0.2)
    return done


def check_answer(client: OpenAI, run: Any) -> tuple[str, int]:
    """A plain run answered its user text once, a tool run called once and answered once."""
    messages = client.beta.threads.messages.list(thread_id=run.thread_id, order="asc").data
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id, order="asc").data
    kinds = [s.type for s in steps]
    user = messages[0].content[0].text.value
    if user.startswith("tool"):
        assert kinds == ["tool_calls", "message_creation"], (run.id, kinds)
        assert messages[1].content[0].text.value.startswith("done: out-call_")
    else:
        assert kinds == ["message_creation"], (run.id, kinds)
        assert messages[1].content[0].text.value == f"You said: {user}"
    assert [m.role for m in messages] == ["user", "assistant"], run.id  # exactly one answer per turn
    return run.id, len(steps)


def stored_outputs(server: Server, response_ids: list[str]) -> dict[str, int]:
    """How many output items each response has in the database."""
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT response_id, count(*) FROM items WHERE output AND response_id = ANY(%s) GROUP BY response_id",
            (response_ids,),
        ).fetchall()
    return {r[0]: r[1] for r in rows}


# Through PgBouncer it passed twice in CI and once finished only 307 of 500 runs in its time
# (restarted workers boot slowly on 2 loaded cores; not seen to be PgBouncer's doing): it stays
# runnable (`-k pgbouncer`, ASSISTD_CHAOS_PGBOUNCER=1) but out of CI until that is understood.
# PgBouncer is tested in CI by tests/contract/test_pgbouncer.py.
WAYS = [False, True] if os.environ.get("ASSISTD_CHAOS_PGBOUNCER") else [False]


@pytest.mark.parametrize("pgbouncer", WAYS, ids=["direct", "pgbouncer"][: len(WAYS)])
def test_chaos(model_server: ScriptedModel, tmp_path: Path, pgbouncer: bool) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server")
    port = free_port()
    redis = [start_redis(port, tmp_path / "redis-1.log")]
    # The driver answers tool calls in sweeps over all 500 runs: give it time to get round.
    server = start_distributed(
        model_server,
        tmp_path,
        workers=3,
        redis_url=f"redis://127.0.0.1:{port}/0",
        extra={"ASSISTD_REQUIRES_ACTION_EXPIRY_SECONDS": "600"},
        pgbouncer=pgbouncer,
    )
    chaos = Chaos(server, redis, port, tmp_path)
    try:
        client = server.client(max_retries=5)
        plain = client.beta.assistants.create(model="echo")
        tooled = client.beta.assistants.create(model="toolonce:lookup", tools=[TOOL])
        jobs = [(plain.id, f"plain {i}") for i in range(PLAIN)] + [
            (tooled.id, f"tool {i}") for i in range(WITH_TOOL)
        ]
        random.shuffle(jobs)
        chaos.start()

        def create(job: tuple[str, str]) -> Any:
            return client.beta.threads.create_and_run(
                assistant_id=job[0], thread={"messages": [{"role": "user", "content": job[1]}]}
            )

        def respond(i: int) -> Any:
            return client.responses.create(model="echo", input=f"background {i}", background=True)

        with ThreadPoolExecutor(8) as pool:
            created = list(pool.map(create, jobs))
            responses = list(pool.map(respond, range(RESPONSES)))
        done = drive(client, created, time.time() + 240)
        ended = drive_responses(client, responses, time.time() + 120)
        chaos.stopping.set()
        chaos.join()
        statuses = Counter(r.status for r in done.values())
        print(
            f"\nchaos: {len(created)} runs acknowledged, {len(done)} ended {dict(statuses)}; "
            f"{chaos.kills} workers SIGKILLed, Redis restarted {chaos.redis_restarts}x"
        )
        assert len(done) == len(created) == PLAIN + WITH_TOOL  # nothing acknowledged was lost
        assert statuses == Counter({"completed": PLAIN + WITH_TOOL})
        print(
            f"chaos: {len(responses)} background responses acknowledged, {len(ended)} ended "
            f"{dict(Counter(r.status for r in ended.values()))}"
        )
        assert len(ended) == len(responses) == RESPONSES
        assert Counter(r.status for r in ended.values()) == Counter({"completed": RESPONSES})
        outputs = stored_outputs(server, list(ended))
        for i, response in enumerate(responses):  # each answered once, its items stored once
            got = ended[response.id]
            assert got.output_text == f"You said: background {i}", response.id
            assert outputs[response.id] == 1, response.id

        with ThreadPoolExecutor(8) as pool:
            checked = list(pool.map(lambda run: check_answer(client, run), created))
        print(f"chaos: {len(checked)} runs checked: one assistant message per turn, no duplicate steps")
    finally:
        chaos.stopping.set()
        stop(server.procs)
        stop(redis)


pytestmark = pytest.mark.timeout(600)
