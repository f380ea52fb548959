"""The runs queue's consumers on the runner's event loop (workers/consumer.py). On a real Redis,
fed by the API's own enqueue (core/enqueue.py): every message started once and acknowledged, no
more fetched than the runner has room for, a failed start tried again, what was not started
handed back at stop, a dead consumer's messages taken over by another's maintenance, an idle
consumer woken by the doorbell, a flushed script loaded again. In memory (embedded mode):
messages from any thread, those queued before the worker booted, the backlog, the hand-back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import MAINTENANCE_SCALE

from core.broker import EXECUTE_RUN, RUNS_QUEUE, LocalBroker
from core.doorbell import DoorbellRedisBroker
from core.enqueue import LoopSender
from tests.conftest import REDIS_URL
from workers import consumer as consumer_module
from workers.consumer import LocalConsumer, RunsConsumer

Start = Callable[[str], Awaitable[None]]


def room(n: int) -> Callable[[], Awaitable[int]]:
    """Room for `n` at once, however many were started: for starts that end at once."""

    async def free() -> int:
        return n

    return free


def slots(n: int) -> tuple[asyncio.Semaphore, Callable[[], Awaitable[int]]]:
    """`n` slots that starts take and keep, and the room they leave, as workers/runner.py has."""
    taken = asyncio.Semaphore(n)

    async def free() -> int:
        if taken.locked():
            async with taken:
                pass
        return taken._value

    return taken, free


def recorder(started: list[str]) -> Start:
    async def start(job_id: str) -> None:
        started.append(job_id)

    return start


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def left(broker: DoorbellRedisBroker) -> dict[str, int]:
    """What the queue still holds: waiting ids, message bodies, fetched-but-unacked ids."""
    ns, c = broker.namespace, broker.client
    acks = sum(c.scard(k) for k in c.scan_iter(f"{ns}:__acks__.*"))
    return {
        "queued": c.llen(f"{ns}:{RUNS_QUEUE}"),
        "bodies": c.hlen(f"{ns}:{RUNS_QUEUE}.msgs"),
        "unacked": acks,
    }


async def send(broker: DoorbellRedisBroker, *ids: str) -> None:
    sender = LoopSender(broker, REDIS_URL)
    for job_id in ids:
        sender(job_id)
    await sender.aclose()


def test_every_message_is_started_once_and_acknowledged(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []
    ids = [f"{'resp' if i % 2 else 'run'}_{i}" for i in range(60)]

    async def go() -> None:
        consumer = RunsConsumer(redis_broker, REDIS_URL, recorder(started), room(8), idle_ms=200)
        consumer.begin()
        await send(redis_broker, *ids[:30])
        await until(lambda: len(started) == 30)
        await send(redis_broker, *ids[30:])
        await until(lambda: len(started) == 60)
        await until(lambda: left(redis_broker)["unacked"] == 0)
        await consumer.stop()

    asyncio.run(go())
    assert sorted(started) == sorted(ids)
    assert left(redis_broker) == {"queued": 0, "bodies": 0, "unacked": 0}


def test_an_idle_consumer_is_woken_by_the_doorbell(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []
    waited: list[float] = []

    async def go() -> None:
        # a 10 s idle wait: only the doorbell's ring can start the job in time
        consumer = RunsConsumer(redis_broker, REDIS_URL, recorder(started), room(8), idle_ms=10_000)
        consumer.begin()
        await asyncio.sleep(0.3)  # fetched nothing, now waiting on the doorbell
        for n in range(5):
            sent = time.monotonic()
            await send(redis_broker, f"run_{n}")
            await until(lambda: len(started) == n + 1)
            waited.append(time.monotonic() - sent)
        await consumer.stop()

    asyncio.run(go())
    assert started == [f"run_{n}" for n in range(5)]
    assert max(waited) < 0.5, waited


def test_no_more_is_fetched_than_the_runner_has_room_for(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []
    release = asyncio.Event()

    async def go() -> None:
        taken, free = slots(3)

        async def slow(job_id: str) -> None:  # a run that keeps its slot until released
            await taken.acquire()
            started.append(job_id)
            await release.wait()
            taken.release()

        consumer = RunsConsumer(redis_broker, REDIS_URL, slow, free, idle_ms=200)
        await send(redis_broker, *(f"run_{i}" for i in range(10)))
        consumer.begin()
        await until(lambda: len(started) == 3)
        await asyncio.sleep(0.3)
        assert len(started) == 3
        assert left(redis_broker)["queued"] == 7  # still there for other workers
        release.set()
        await until(lambda: len(started) == 10)
        await until(lambda: left(redis_broker)["unacked"] == 0)
        await consumer.stop()

    asyncio.run(go())
    assert sorted(started) == sorted(f"run_{i}" for i in range(10))
    assert left(redis_broker) == {"queued": 0, "bodies": 0, "unacked": 0}


def test_a_failed_start_is_tried_again_then_left_to_the_sweeper(
    redis_broker: DoorbellRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "MIN_BACKOFF", 0.01)
    tries: dict[str, int] = {}

    async def flaky(job_id: str) -> None:
        tries[job_id] = tries.get(job_id, 0) + 1
        if job_id == "run_never" or tries[job_id] <= 2:
            raise ConnectionError("the database is restarting")

    async def go() -> None:
        consumer = RunsConsumer(redis_broker, REDIS_URL, flaky, room(8), idle_ms=200)
        consumer.begin()
        await send(redis_broker, "run_twice", "run_never")
        await until(lambda: tries.get("run_never", 0) == consumer_module.RETRIES + 1)
        await until(lambda: left(redis_broker)["unacked"] == 0)
        await asyncio.sleep(0.2)
        await consumer.stop()

    asyncio.run(go())
    assert tries == {"run_twice": 3, "run_never": consumer_module.RETRIES + 1}
    # given up on: acknowledged (the run is still queued in the database: the sweeper re-sends it)
    assert left(redis_broker) == {"queued": 0, "bodies": 0, "unacked": 0}


def test_stop_hands_back_what_was_not_started(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []

    async def stuck_or_stopping(job_id: str) -> None:
        if job_id == "run_stuck":  # its claim never ends: given up on at stop
            await asyncio.Event().wait()
        if job_id == "run_late":  # fetched while the runner was stopping (Runner.start)
            raise dramatiq.Retry(delay=100)
        started.append(job_id)

    async def go() -> None:
        consumer = RunsConsumer(redis_broker, REDIS_URL, stuck_or_stopping, room(8), idle_ms=200)
        consumer.begin()
        await send(redis_broker, "run_ok", "run_stuck", "run_late")
        await until(lambda: started == ["run_ok"] and left(redis_broker)["unacked"] == 2)
        await consumer.stop()
        assert left(redis_broker) == {"queued": 2, "bodies": 2, "unacked": 0}
        again: list[str] = []
        other = RunsConsumer(redis_broker, REDIS_URL, recorder(again), room(8), idle_ms=200)
        other.begin()
        await until(lambda: len(again) == 2)
        await other.stop()
        assert sorted(again) == ["run_late", "run_stuck"]

    asyncio.run(go())


def test_a_dead_consumers_messages_are_taken_over(redis_broker: DoorbellRedisBroker) -> None:
    import redis

    started: list[str] = []

    async def dies(job_id: str) -> None:
        await asyncio.Event().wait()

    async def go() -> None:
        dead = RunsConsumer(redis_broker, REDIS_URL, dies, room(8), idle_ms=200)
        dead.begin()
        await send(redis_broker, "run_orphan")
        await until(lambda: left(redis_broker)["unacked"] == 1)
        assert dead._task is not None
        # gone without a word: no ack, no requeue, no more heartbeats (its loop told to end too:
        # redis-py may hold a cancelled blocking read until it returns)
        dead._stopping = True
        tasks = [dead._task, *(task for _, task in dead._starting.values())]
        for task in tasks:
            task.cancel()
        await dead._close()
        await asyncio.wait(tasks, timeout=5)
        await dead._close()  # what its loop may have opened again meanwhile (as stop() does)
        # another process (another broker id), whose every fetch does maintenance
        other_broker = DoorbellRedisBroker(
            client=redis.Redis.from_url(REDIS_URL), namespace=redis_broker.namespace
        )
        other_broker.heartbeat_timeout = 300
        other_broker.maintenance_chance = MAINTENANCE_SCALE
        alive = RunsConsumer(other_broker, REDIS_URL, recorder(started), room(8), idle_ms=100)
        alive.begin()
        await until(lambda: started == ["run_orphan"])
        await until(lambda: left(redis_broker)["unacked"] == 0)
        await alive.stop()
        other_broker.client.close()

    asyncio.run(go())
    assert left(redis_broker) == {"queued": 0, "bodies": 0, "unacked": 0}


def test_a_flushed_script_is_loaded_again(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []

    async def go() -> None:
        consumer = RunsConsumer(redis_broker, REDIS_URL, recorder(started), room(8), idle_ms=100)
        consumer.begin()
        await send(redis_broker, "run_before")
        await until(lambda: started == ["run_before"])
        redis_broker.client.script_flush()
        await send(redis_broker, "run_after")
        await until(lambda: started == ["run_before", "run_after"])
        await consumer.stop()

    asyncio.run(go())


# --- embedded mode: the in-memory queue (core/broker.py's LocalBroker) ---------------------------


def local_broker() -> LocalBroker:
    broker = LocalBroker()
    broker.declare_queue(RUNS_QUEUE)
    return broker


def message(job_id: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=RUNS_QUEUE, actor_name=EXECUTE_RUN, args=(job_id,), kwargs={}, options={}
    )


def test_local_messages_from_any_thread_are_started_once() -> None:
    broker, started = local_broker(), []
    broker.enqueue(message("run_early"))  # before the worker booted: waits in the queue

    async def go() -> None:
        consumer = LocalConsumer(broker, recorder(started), room(8))
        consumer.begin()
        broker.enqueue(message("run_loop"))  # from the loop itself (the hub of `serve --workers`)
        await asyncio.to_thread(lambda: [broker.enqueue(message(f"run_{i}")) for i in range(20)])
        await until(lambda: len(started) == 22)
        await consumer.stop()

    asyncio.run(go())
    assert sorted(started) == sorted(["run_early", "run_loop", *(f"run_{i}" for i in range(20))])
    assert broker.queues[RUNS_QUEUE].qsize() == 0


def test_local_backlog_and_stop_hand_back_what_was_not_started() -> None:
    broker, started = local_broker(), []
    release = asyncio.Event()

    async def go() -> None:
        taken, free = slots(1)

        async def slow(job_id: str) -> None:
            await taken.acquire()
            started.append(job_id)
            if job_id == "run_0":  # its claim never ends
                await release.wait()

        consumer = LocalConsumer(broker, slow, free)
        consumer.begin()
        for i in range(5):
            broker.enqueue(message(f"run_{i}"))
        await until(lambda: started == ["run_0"])
        await asyncio.sleep(0.1)
        assert broker.waiting(RUNS_QUEUE) == 4  # what a worker's backlog gauge and sweeper see
        await consumer.stop()  # run_0's claim never ends: given up on, with the 4 never taken

    asyncio.run(go())
    assert started == ["run_0"]
    back = [dramatiq.Message.decode(broker.queues[RUNS_QUEUE].get_nowait()).args[0] for _ in range(5)]
    assert sorted(back) == [f"run_{i}" for i in range(5)]
    broker.enqueue(message("run_after"))  # nobody listens any more: into the queue
    assert broker.waiting(RUNS_QUEUE) == 1


def test_stop_leaves_no_task_and_no_connection(redis_broker: DoorbellRedisBroker) -> None:
    started: list[str] = []

    async def go() -> None:
        for rounds in range(20):
            # a 10 s idle wait: stopped while waiting on the doorbell, or just after a fetch
            consumer = RunsConsumer(redis_broker, REDIS_URL, recorder(started), room(8), idle_ms=10_000)
            consumer.begin()
            await send(redis_broker, f"run_{rounds}")
            await until(lambda: len(started) == rounds + 1)
            await asyncio.sleep(0.3 if rounds % 2 else 0)
            stopped = time.monotonic()
            await consumer.stop()
            assert time.monotonic() - stopped < 3
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert left(redis_broker)["unacked"] == 0
            for client in (consumer._client, consumer._bell):
                pool = client.connection_pool
                # redis-py's pool: no connection left open, in use or not
                held = [*pool._available_connections, *pool._in_use_connections]
                assert not [c for c in held if c.is_connected]

    asyncio.run(go())


def test_a_blocking_read_ends_with_its_connection(redis_broker: DoorbellRedisBroker) -> None:
    """redis-py may hold a cancelled blocking read until it returns: stop() then closes its
    connection, which must end the read, not open another connection and read on."""

    async def go() -> None:
        consumer = RunsConsumer(redis_broker, REDIS_URL, recorder([]), room(8), idle_ms=10_000)
        consumer.begin()
        await asyncio.sleep(0.3)  # waiting on the doorbell, for up to 10 s
        assert consumer._task is not None
        consumer._stopping = True  # stop(), but with the read not cancelled
        await consumer._close()
        await asyncio.wait([consumer._task], timeout=3)
        assert consumer._task.done()
        held = [*consumer._bell.connection_pool._available_connections]
        held += consumer._bell.connection_pool._in_use_connections
        assert not [c for c in held if c.is_connected]

    asyncio.run(go())
