"""The run event log, in memory and in Redis: order, replay from the start, several readers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from core.events import EventLog, MemoryEventLog, RedisEventLog
from tests.conftest import REDIS_URL, unavailable
from tests.procs import redis_available


@pytest.fixture(params=["memory", "redis"])
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog()
        return
    if not redis_available():
        unavailable("Redis")
    yield RedisEventLog(REDIS_URL, "assistd-test-" + secrets.token_hex(4))


async def read_all(log: EventLog, run_id: str, after: str = "0") -> list[str]:
    names: list[str] = []
    while True:
        batch = await log.read(run_id, after, 5000)
        assert batch, "reader timed out"
        for after, name, _ in batch:
            names.append(name)
            if name == "thread.run.completed":
                return names


def test_readers_early_and_late_see_the_same_sequence(log: EventLog) -> None:
    async def go() -> None:
        expected = [f"thread.message.delta.{i}" for i in range(300)] + ["thread.run.completed"]
        early = [asyncio.create_task(read_all(log, "run_x")) for _ in range(2)]
        await asyncio.sleep(0.05)
        for i in range(0, 300, 7):  # published in batches, while the early readers wait
            await log.publish("run_x", [(name, "{}") for name in expected[i : i + 7]])
            await asyncio.sleep(0)
        await log.publish("run_x", [("thread.run.completed", "{}")])
        late = await read_all(log, "run_x")
        assert [await t for t in early] == [expected, expected]
        assert late == expected
        middle = await log.last("run_x")
        await log.publish("run_x", [("thread.run.completed", "{}")])
        assert [n for _, n, _ in await log.read("run_x", middle, 1000)] == ["thread.run.completed"]
        await log.aclose()

    asyncio.run(go())


def test_a_reader_waits_then_times_out(log: EventLog) -> None:
    async def go() -> None:
        assert await log.read("run_none", "0", 100) == []
        await log.aclose()

    asyncio.run(go())


def test_many_readers_wait_at_once(log: EventLog) -> None:
    """Every plain create, long poll and stream waits in a blocking read of its own: 300 at once
    (redis-py's pool refuses a 101st connection by default, which answered 500 under load)."""

    async def go() -> None:
        readers = [asyncio.create_task(log.read(f"run_{i}", "0", 5000)) for i in range(300)]
        await asyncio.sleep(0.3)  # all of them waiting
        for i in range(300):
            await log.publish(f"run_{i}", [("thread.run.completed", "{}")])
        got = await asyncio.gather(*readers)
        assert [[name for _, name, _ in batch] for batch in got] == [["thread.run.completed"]] * 300
        await log.aclose()

    asyncio.run(go())
