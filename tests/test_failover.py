"""Chaos on Redis Sentinel: runs (plain and with a function call) and background responses are
created and executed while the Redis primary moves twice, first in a graceful failover (`SENTINEL
FAILOVER`), then because it is SIGKILLed and the sentinels promote its replica. Every run and
response must end `completed`, executed exactly once: the checks of test_chaos.py.

What a failover may lose (writes the old primary took and never passed on) is Redis's: the queue
messages among them are re-sent by the workers' sweeper, from the runs the database holds as
queued. The test prints how many the sweepers re-sent."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ScriptedModel, ServiceMissing, start_distributed, stop, unavailable
from tests.sentinel import SentinelGroup
from tests.test_chaos import TOOL, check_answer, drive, drive_responses, stored_outputs

PLAIN, WITH_TOOL, RESPONSES = 120, 40, 40
PACE = 0.15  # seconds between two creates: the 200 of them span both failovers


class Failovers(threading.Thread):
    """A graceful failover after 2 s, then (once the replica is in sync again) a killed primary."""

    def __init__(self, group: SentinelGroup) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.moves: list[tuple[str, float]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.time()
        try:
            time.sleep(2)
            self.group.failover()
            self.moves.append(("failover", time.time() - started))
            self.group.kill_primary()
            self.moves.append(("killed", time.time() - started))
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_failover_under_load(model_server: ScriptedModel, tmp_path: Path) -> None:
    try:
        group = SentinelGroup(tmp_path).start()
    except ServiceMissing as exc:
        unavailable(str(exc))
        raise
    server = None
    try:
        server = start_distributed(
            model_server,
            tmp_path,
            workers=2,
            redis_url=group.url,
            extra={"ASSISTD_REQUIRES_ACTION_EXPIRY_SECONDS": "600"},
        )
        client = server.client(max_retries=5)
        plain = client.beta.assistants.create(model="slow:300")  # in flight while the primary moves
        tooled = client.beta.assistants.create(model="toolonce:lookup", tools=[TOOL])
        jobs: list[tuple[str, str]] = [(plain.id, f"plain {i}") for i in range(PLAIN)]
        jobs += [(tooled.id, f"tool {i}") for i in range(WITH_TOOL)]
        jobs += [("response", f"background {i}") for i in range(RESPONSES)]
        random.shuffle(jobs)

        def create(job: tuple[str, str]) -> Any:
            if job[0] == "response":
                return client.responses.create(model="echo", input=job[1], background=True)
            return client.beta.threads.create_and_run(
                assistant_id=job[0], thread={"messages": [{"role": "user", "content": job[1]}]}
            )

        failovers = Failovers(group)
        failovers.start()
        started = time.time()
        with ThreadPoolExecutor(4) as pool:
            futures = []
            for job in jobs:
                futures.append(pool.submit(create, job))
                time.sleep(PACE)
            made = [f.result() for f in futures]
        created = [m for m in made if not m.id.startswith("resp_")]
        responses = [m for m in made if m.id.startswith("resp_")]
        done = drive(client, created, time.time() + 180)
        ended = drive_responses(client, responses, time.time() + 120)
        failovers.join(timeout=120)
        took = time.time() - started
        assert failovers.error is None, failovers.error
        assert [name for name, _ in failovers.moves] == ["failover", "killed"]

        statuses = Counter(r.status for r in done.values())
        resent = sum(p.read_text().count("sweeper re-sent") for p in tmp_path.glob("worker*.log"))
        print(
            f"\nfailover: {len(created)} runs and {len(responses)} background responses acknowledged in "
            f"{took:.0f} s, primary moved at {[(n, round(t, 1)) for n, t in failovers.moves]}; "
            f"runs ended {dict(statuses)}; sweeper re-sends logged {resent}"
        )
        assert len(done) == len(created) == PLAIN + WITH_TOOL  # nothing acknowledged was lost
        assert statuses == Counter({"completed": PLAIN + WITH_TOOL})
        assert len(ended) == len(responses) == RESPONSES
        assert Counter(r.status for r in ended.values()) == Counter({"completed": RESPONSES})
        outputs = stored_outputs(server, list(ended))
        asked = {m.id: text for (_, text), m in zip(jobs, made, strict=True)}
        for response in responses:  # each answered once, its items stored once
            assert ended[response.id].output_text == f"You said: {asked[response.id]}", response.id
            assert outputs[response.id] == 1, response.id
        with ThreadPoolExecutor(8) as pool:
            checked = list(pool.map(lambda run: check_answer(client, run), created))
        print(f"failover: {len(checked)} runs checked: one assistant message per turn, no duplicate steps")
    finally:
        if server is not None:
            stop(server.procs)
        group.stop()


pytestmark = pytest.mark.timeout(600)
