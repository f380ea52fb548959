"""The runs queue, consumed on the runner's event loop.

dramatiq's consumer hands each message through three threads: its consumer thread fetches it, a
worker thread calls the actor, which waits for the event loop to claim the run, and the ack goes
back the same way. Every hand-off wakes another thread and waits for the GIL: on a 2-core machine
that was a fifth of a worker's CPU and most of a millisecond of every run's and response's way.
Here one task on the runner's loop takes each message and starts it.

- `RunsConsumer` (distributed mode) speaks dramatiq's Redis protocol, not a new one: the same Lua
  script (fetch, ack, requeue), the same keys, the same heartbeats under the broker's id and the
  same occasional maintenance, which puts a dead worker's unacknowledged messages back on the
  queue; the API's enqueue (core/enqueue.py) and the doorbell (core/doorbell.py) are unchanged.
- `LocalConsumer` (embedded mode) takes the messages that core/broker.py's in-memory broker is
  given, from any thread, straight onto the runner's loop.

As with the actors they replace, a message is acknowledged once its run is claimed (from then on
the database lease keeps the run safe), a failed start is tried again with a backoff (five times,
then left to the sweeper, which re-sends queued runs), and at shutdown what was taken but not
started goes back to the queue.
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

from core.broker import RUNS_QUEUE, LocalBroker
from core.doorbell import doorbell_key
from core.enqueue import dispatch_args
from workers.metrics import BACKLOG, MESSAGE_SECONDS, MESSAGES

log = logging.getLogger("assistd.worker")

RETRIES = 5  # as the actors had: max_retries=5, backoff from 0.2 s doubling up to 5 s
MIN_BACKOFF, MAX_BACKOFF = 0.2, 5.0
PREFETCH = 32  # at most this many messages a fetch (each is started at once)
ERROR_PAUSE = 0.5  # after Redis failed a fetch: it is restarting, or unreachable
Message = dramatiq.Message[Any]


class Consumer:
    """`start(job_id)` for every message of the runs queue, on the running event loop.

    `room()` waits until the runner can take one more job and says how many it could take; no
    more than that are taken, so a full worker leaves messages to the others."""

    def __init__(self, start: Callable[[str], Awaitable[None]], room: Callable[[], Awaitable[int]]) -> None:
        self.start, self.room = start, room
        self._starting: dict[str, tuple[Message, asyncio.Task[None]]] = {}
        self._back: list[Message] = []  # taken while the runner was stopping: back to the queue
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._measured = 0.0
        self._measuring: asyncio.Task[None] | None = None  # kept: a task nobody holds may vanish

    def begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="runs-consumer")

    async def _consume(self) -> None:
        raise NotImplementedError

    async def _free(self) -> int:
        """Jobs the runner could start now, once it could start one."""
        await asyncio.sleep(0)  # the starts just spawned take their slots first (their first step)
        return await self.room()

    async def _ack(self, message: Message) -> None:
        """The message is done with (its run claimed, or given up on)."""

    async def _hand_back(self, messages: list[Message]) -> None:
        """Put `messages` back on the queue for another worker (or this one's next start)."""

    async def _close(self) -> None:
        pass

    async def _length(self) -> int:
        """Messages waiting in the queue, not taken yet."""
        raise NotImplementedError

    def _gauge(self) -> None:
        now = time.perf_counter()
        if now - self._measured > 1.0:  # one look at the queue a second is plenty for a gauge
            self._measured = now
            self._measuring = asyncio.create_task(self._measure())

    async def _measure(self) -> None:
        try:
            BACKLOG.labels(RUNS_QUEUE).set(await self._length())
        except RedisError:
            pass

    def _spawn(self, message: Message) -> None:
        task = asyncio.create_task(self._process(message))
        self._starting[message.message_id] = (message, task)
        task.add_done_callback(functools.partial(self._started, message.message_id))

    def _started(self, message_id: str, task: asyncio.Task[None]) -> None:
        self._starting.pop(message_id, None)

    async def _process(self, message: Message) -> None:
        job_id, actor, began = message.args[0], message.actor_name, time.perf_counter()
        outcome = "error"
        for attempt in range(RETRIES + 1):
            try:
                await self.start(job_id)
                outcome = "ok"
                break
            except dramatiq.Retry:  # the runner is stopping: the message goes back at shutdown
                self._back.append(message)
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
        await self._ack(message)

    async def stop(self) -> None:
        """Take no more; wait for the starts under way (a claim is short), and put back on the
        queue what could not be started."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            # redis-py can hold a cancelled blocking read (the doorbell's) until it returns: not
            # waited for, since the loop takes nothing once stopping (its connection closes below)
            await asyncio.wait([self._task], timeout=0.2)
        waiting = dict(self._starting)
        if waiting:  # a claim takes milliseconds; a start waiting out a backoff is given up
            await asyncio.wait([task for _, task in waiting.values()], timeout=2)
        back = self._back + [message for message, task in waiting.values() if not task.done()]
        for _, task in waiting.values():
            task.cancel()
        await self._hand_back(back)
        if self._measuring is not None:  # its connection must not open after the close below
            await asyncio.wait([self._measuring], timeout=1)
        await self._close()
        if self._task is not None and not self._task.done():
            # a held blocking read ends with its connection, closed above; whatever the loop
            # opened again before it saw `_stopping`, closing again closes
            await asyncio.wait([self._task], timeout=1)
            await self._close()


class RunsConsumer(Consumer):
    """The runs queue in Redis (distributed mode), with dramatiq's script and keys."""

    def __init__(
        self,
        broker: RedisBroker,
        url: str,
        start: Callable[[str], Awaitable[None]],
        room: Callable[[], Awaitable[int]],
        idle_ms: int,
    ) -> None:
        from core.redis_client import async_client

        super().__init__(start, room)
        self.broker = broker
        self.idle = idle_ms / 1000  # the doorbell's longest wait: the heartbeat's period when idle
        # blocking reads (the doorbell) on a connection of their own, beside the script calls
        self._client = async_client(url)
        self._bell = async_client(url, socket_timeout=self.idle + 10)
        self._script = broker.scripts["dispatch"]
        self._unpack: int | None = None

    async def _consume(self) -> None:
        key = doorbell_key(self.broker.namespace, RUNS_QUEUE)
        drained = False  # the last fetch left the queue empty
        # checked as well as cancelled: redis-py may turn a cancelled read into a RedisError
        while not self._stopping:
            free = await self._free()
            asked = min(free, PREFETCH)
            try:
                if drained:
                    # Wait for an enqueue's ring (every message rings once, after it is queued,
                    # so none is missed); the timeout keeps the heartbeat going when idle.
                    fetched = await self._wait_and_fetch(key, asked)
                    if self._stopping:  # a held read (see stop): these go back, if stop() still can
                        self._back += [dramatiq.Message.decode(d) for d in fetched if d is not None]
                        return
                else:
                    fetched = await self._dispatch("fetch", asked)
            except RedisError:
                if self._stopping:
                    return
                log.warning("could not fetch from the runs queue; trying again", exc_info=True)
                await asyncio.sleep(ERROR_PAUSE)
                continue
            drained = len(fetched) < asked
            if fetched:
                self._gauge()
            for data in fetched:
                if data is not None:  # None: fetched, but its body was gone (acked by a twin)
                    self._spawn(dramatiq.Message.decode(data))

    async def _ack(self, message: Message) -> None:
        try:
            await self._dispatch("ack", message.options["redis_message_id"])
        except RedisError:  # left in this worker's acks: maintenance re-queues it once we are gone
            log.warning("could not acknowledge %s", message.args[0], exc_info=True)

    async def _hand_back(self, messages: list[Message]) -> None:
        try:
            if messages:
                await self._dispatch("requeue", *(m.options["redis_message_id"] for m in messages))
        except RedisError:  # left in this worker's acks: maintenance re-queues them
            log.warning("could not hand back %d message(s)", len(messages), exc_info=True)

    async def _close(self) -> None:
        await self._client.aclose()
        await self._bell.aclose()

    async def _wait_and_fetch(self, key: str, asked: int) -> Any:
        """The doorbell's wait, then a fetch, in one round trip: Redis runs the fetch as soon as
        a ring (or the timeout) ends the wait. Its time is taken before: the heartbeat it writes
        may be `idle` old (dramatiq's heartbeat timeout is a minute)."""
        argv = await self._argv("fetch", asked)
        pipe = self._bell.pipeline(transaction=False)
        pipe.brpop([key], timeout=self.idle)
        pipe.evalsha(self._script.sha, 1, self.broker.namespace, *argv)
        rung, fetched = await pipe.execute(raise_on_error=False)
        if isinstance(fetched, NoScriptError):  # loaded again by a fetch of its own
            return await self._dispatch("fetch", asked)
        for result in (rung, fetched):
            if isinstance(result, Exception):
                raise result
        return fetched

    async def _argv(self, command: str, *args: Any) -> list[Any]:
        unpack = self._unpack
        if unpack is None:  # dramatiq asks Redis once per process (a blocking call)
            unpack = self._unpack = int(await asyncio.to_thread(self.broker._max_unpack_size))
        return dispatch_args(self.broker, command, unpack, *args)

    async def _dispatch(self, command: str, *args: Any) -> Any:
        broker = self.broker
        argv = await self._argv(command, *args)
        try:
            return await self._client.evalsha(self._script.sha, 1, broker.namespace, *argv)
        except NoScriptError:  # Redis was restarted or flushed its scripts: load it again
            await self._client.script_load(self._script.script)
            return await self._client.evalsha(self._script.sha, 1, broker.namespace, *argv)

    async def _length(self) -> int:
        return int(await self._client.llen(f"{self.broker.namespace}:{RUNS_QUEUE}"))


class LocalConsumer(Consumer):
    """The runs queue in this process's memory (embedded mode): what the broker is given, from
    the API's thread or the runner's own loop, is put straight on the runner's loop."""

    def __init__(
        self, broker: LocalBroker, start: Callable[[str], Awaitable[None]], room: Callable[[], Awaitable[int]]
    ) -> None:
        super().__init__(start, room)
        self.broker = broker
        self._waiting: asyncio.Queue[Message] = asyncio.Queue()

    def begin(self) -> None:
        loop = asyncio.get_running_loop()

        def put(message: Message) -> None:  # on whichever thread enqueued it
            loop.call_soon_threadsafe(self._waiting.put_nowait, message)

        self.broker.listen(RUNS_QUEUE, put, self._waiting.qsize)
        super().begin()

    async def _consume(self) -> None:
        while not self._stopping:
            await self._free()
            message = await self._waiting.get()
            self._gauge()
            self._spawn(message)

    async def _length(self) -> int:
        return self.broker.waiting(RUNS_QUEUE)

    async def _hand_back(self, messages: list[Message]) -> None:
        self.broker.listen(RUNS_QUEUE, None)  # from now on into dramatiq's in-memory queue
        await asyncio.sleep(0)  # puts already on their way to the loop land first
        while not self._waiting.empty():
            messages.append(self._waiting.get_nowait())
        for message in messages:
            self.broker.enqueue(message)
