"""The hub of `assistd serve --workers N` (core/hub.py, assistd/hub.py) in one process: the event
log, the counters and the queue reached through the Unix socket behave as the memory ones they
front, a blocking read is woken by a publish, and a hub that is gone is an error, not a hang."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from assistd.hub import Hub
from core.events import MemoryEventLog
from core.hub import HubBroker, HubClient, HubCounters, HubError, HubEventLog
from core.quotas import MemoryCounters

ROOT = Path(__file__).resolve().parents[2]


def test_the_event_log_counters_and_queue_through_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    broker = StubBroker()
    broker.declare_queue("runs")
    memory, counters = MemoryEventLog(), MemoryCounters(60)

    async def main() -> None:
        server = await Hub(broker, memory, counters).serve(path)
        client = HubClient(path)
        events = HubEventLog(client)
        await events.ping()
        assert await events.last("run_1") == "0" and await events.last_event("run_1") is None
        # a read that waits is answered when the worker publishes, while other calls go on
        waiting = asyncio.create_task(events.read("run_1", "0", 5000))
        await asyncio.sleep(0.05)
        assert await events.last("run_2") == "0"  # not held up behind the waiting read
        assert not waiting.done()
        await memory.publish("run_1", [("thread.run.created", '{"a":1}')])
        assert await asyncio.wait_for(waiting, 2) == [("1", "thread.run.created", '{"a":1}')]
        await events.publish("run_1", [("thread.run.completed", "{}")])
        assert await memory.last_event("run_1") == ("thread.run.completed", "{}")
        assert await events.read("run_1", "1", 10) == [("2", "thread.run.completed", "{}")]
        assert await events.read("run_1", "2", 10) == []

        limits = HubCounters(client)
        await counters.spend("proj", 7)  # the worker's spending, read by an API process
        usage = await limits.hit("proj", True, True)
        assert (usage.requests, usage.tokens) == (1, 7) and 0 < usage.requests_reset <= 60
        await limits.spend("proj", 3)
        assert (await counters.hit("proj", True, True)).tokens == 10

        message = dramatiq.Message(
            queue_name="runs", actor_name="execute_run", args=("run_1",), kwargs={}, options={}
        )
        HubBroker(client).enqueue(message)
        for _ in range(100):
            if broker.queues["runs"].qsize():
                break
            await asyncio.sleep(0.01)
        got = dramatiq.Message.decode(broker.queues["runs"].get_nowait())
        assert (got.message_id, got.actor_name, got.args) == (message.message_id, "execute_run", ("run_1",))

        with pytest.raises(HubError, match="unknown operation"):
            await client.call("nonsense")
        await events.ping()  # the connection survived the failed call
        await client.aclose()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


HUB_PROCESS = """
import asyncio, sys
from dramatiq.brokers.stub import StubBroker
from assistd.hub import Hub
from core.events import MemoryEventLog
from core.quotas import MemoryCounters

async def main():
    await Hub(StubBroker(), MemoryEventLog(), MemoryCounters(60)).serve(sys.argv[1])
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_a_hub_that_is_gone_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")

    async def main() -> None:
        client = HubClient(path)
        with pytest.raises(HubError, match="cannot reach"):
            await HubEventLog(client).ping()
        with pytest.raises(HubError, match="cannot reach"):
            client.send("ping")
        parent = subprocess.Popen([sys.executable, "-c", HUB_PROCESS, path], cwd=ROOT)
        try:
            for _ in range(200):
                if os.path.exists(path):
                    break
                await asyncio.sleep(0.05)
            await HubEventLog(client).ping()
            waiting = asyncio.create_task(HubEventLog(client).read("run_1", "0", 10_000))
            await asyncio.sleep(0.1)
            parent.kill()  # the serving process gone: the waiting read fails at once
            with pytest.raises(HubError, match="closed the connection"):
                await asyncio.wait_for(waiting, 2)
        finally:
            parent.kill()
            parent.wait()

    asyncio.run(main())
