"""The runs queue, consumed on the runner's event loop (distributed mode).

dramatiq's consumer hands each message through three threads: its consumer thread fetches it, a
worker thread calls the actor, which waits for the event loop to claim the run, and the ack goes
back the same way. Every hand-off wakes another thread and waits for the GIL: on a 2-core machine
that was a fifth of a worker's CPU and most of a millisecond of every run's and response's way.
Here one task on the runner's loop fetches, starts and acknowledges through an asyncio client.

It speaks dramatiq's protocol, not a new one: the same Lua script (fetch, ack, requeue), the same
keys, the same heartbeats under the broker's id and the same occasional maintenance, which puts
a dead worker's unacknowledged messages back on the queue; the API's enqueue (core/enqueue.py) and
the doorbell (core/doorbell.py) are unchanged. As with the actors it replaces, a message is
acknowledged once its run is claimed (from then on the database lease keeps the run safe), a
failed start is tried again with a backoff (five times, then left to the sweeper, which re-sends
queued runs), and at shutdown what was fetched but not started goes back to the queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis.exceptions import NoScriptError, RedisError

from core.broker import RUNS_QUEUE
from core.doorbell import doorbell_key
from workers.metrics import BACKLOG, MESSAGE_SECONDS, MESSAGES

log = logging.getLogger("assistd.worker")

RETRIES = 5  # as the actors had: max_retries=5, backoff from 0.2 s doubling up to 5 s
MIN_BACKOFF, MAX_BACKOFF = 0.2, 5.0
PREFETCH = 32  # at most this many messages a fetch (each is started at once)
ERROR_PAUSE = 0.5  # after Redis failed a fetch: it is restarting, or unreachable


class RunsConsumer:
    """`start(job_id)` for every message of the runs queue, on the running event loop.

    `room()` waits until the runner can take one more job and says how many it could take; the
    consumer fetches no more than that, so a full worker leaves messages to the others."""

    def __init__(
        self,
        broker: RedisBroker,
        url: str,
        start: Callable[[str], Awaitable[None]],
        room: Callable[[], Awaitable[int]],
        idle_ms: int,
    ) -> None:
        from core.redis_client import async_client

        self.broker, self.start, self.room = broker, start, room
        self.idle = idle_ms / 1000  # the doorbell's longest wait: the heartbeat's period when idle
        # blocking reads (the doorbell) on a connection of their own, beside the script calls
        self._client = async_client(url)
        self._bell = async_client(url, socket_timeout=self.idle + 10)
        self._script = broker.scripts["dispatch"]
        self._unpack: int | None = None
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._back: list[str] = []  # fetched while the runner was stopping: back to the queue
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._measured = 0.0

    def begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="runs-consumer")

    async def _consume(self) -> None:
        key = doorbell_key(self.broker.namespace, RUNS_QUEUE)
        # checked as well as cancelled: redis-py may turn a cancelled read into a RedisError
        while not self._stopping:
            free = await self.room() - len(self._starting)
            if free <= 0:  # started jobs have not taken their slots yet
                await asyncio.sleep(0.001)
                continue
            try:
                fetched = await self._dispatch("fetch", min(free, PREFETCH))
                if not fetched:
                    # wait for an enqueue's ring; the timeout keeps the heartbeat going when idle
                    await self._bell.brpop([key], timeout=self.idle)
                    continue
            except RedisError:
                if self._stopping:
                    return
                log.warning("could not fetch from the runs queue; trying again", exc_info=True)
                await asyncio.sleep(ERROR_PAUSE)
                continue
            self._gauge()
            for data in fetched:
                if data is None:  # fetched, but its body was gone (acked by a slower twin)
                    continue
                message: dramatiq.Message[Any] = dramatiq.Message.decode(data)
                redis_id = message.options["redis_message_id"]
                task = asyncio.create_task(self._process(message))
                self._starting[redis_id] = task
                task.add_done_callback(functools.partial(self._started, redis_id))

    def _started(self, redis_id: str, task: asyncio.Task[None]) -> None:
        self._starting.pop(redis_id, None)

    async def _process(self, message: dramatiq.Message[Any]) -> None:
        job_id, actor, began = message.args[0], message.actor_name, time.perf_counter()
        outcome = "error"
        for attempt in range(RETRIES + 1):
            try:
                await self.start(job_id)
                outcome = "ok"
                break
            except dramatiq.Retry:  # the runner is stopping: the message goes back at shutdown
                self._back.append(message.options["redis_message_id"])
                return
            except Exception:
                if attempt == RETRIES:
                    log.error("could not start %s; the sweeper will send it again", job_id, exc_info=True)
                    break
                log.warning("could not start %s; trying again", job_id, exc_info=True)
                MESSAGES.labels(RUNS_QUEUE, actor, "retry").inc()
                await asyncio.sleep(min(MIN_BACKOFF * 2**attempt, MAX_BACKOFF))
        MESSAGE_SECONDS.labels(RUNS_QUEUE, actor).observe(time.perf_counter() - began)
        MESSAGES.labels(RUNS_QUEUE, actor, outcome).inc()
        try:
            await self._dispatch("ack", message.options["redis_message_id"])
        except RedisError:  # left in this worker's acks: maintenance re-queues it once we are gone
            log.warning("could not acknowledge %s", job_id, exc_info=True)

    async def _dispatch(self, command: str, *args: Any) -> Any:
        broker = self.broker
        if self._unpack is None:  # dramatiq asks Redis once per process (a blocking call)
            self._unpack = await asyncio.to_thread(broker._max_unpack_size)
        argv = [
            command,
            int(time.time() * 1000),
            RUNS_QUEUE,
            broker.broker_id,  # the heartbeat and the acks set are this process's
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            broker._should_do_maintenance(command),
            self._unpack,
            *args,
        ]
        try:
            return await self._client.evalsha(self._script.sha, 1, broker.namespace, *argv)
        except NoScriptError:  # Redis was restarted or flushed its scripts: load it again
            await self._client.script_load(self._script.script)
            return await self._client.evalsha(self._script.sha, 1, broker.namespace, *argv)

    def _gauge(self) -> None:
        now = time.perf_counter()
        if now - self._measured > 1.0:  # one look at the queue a second is plenty for a gauge
            self._measured = now
            task = asyncio.create_task(self._backlog())
            task.add_done_callback(lambda _: None)

    async def _backlog(self) -> None:
        try:
            BACKLOG.labels(RUNS_QUEUE).set(await self._client.llen(f"{self.broker.namespace}:{RUNS_QUEUE}"))
        except RedisError:
            pass

    async def stop(self) -> None:
        """Fetch no more; wait for the starts under way (a claim is short), and put back on the
        queue what could not be started."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        waiting = dict(self._starting)
        if waiting:  # a claim takes milliseconds; a start waiting out a backoff is given up
            await asyncio.wait(waiting.values(), timeout=2)
        back = self._back + [i for i, task in waiting.items() if not task.done()]
        for task in waiting.values():
            task.cancel()
        try:
            if back:
                await self._dispatch("requeue", *back)
        except RedisError:  # left in this worker's acks: maintenance re-queues them
            log.warning("could not hand back %d message(s)", len(back), exc_info=True)
        await self._client.aclose()
        await self._bell.aclose()
