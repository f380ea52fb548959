"""Run ids into the Redis queue from the API's event loop, in one pipeline per turn of the loop.

dramatiq's broker enqueues with its blocking client: two round trips (its dispatch script, then
the doorbell) that the API made in a thread of its own so as not to block the loop. Handing the id
to that thread, and the thread waiting for the GIL, was about 1.4 ms of every run's and
response's way to a worker. Here the same script and the same doorbell go out through an asyncio
client: every id handed over during one turn of the loop goes in one pipeline (one script call
each, one ring), so a burst of creates costs one round trip, not two per id.

The messages are dramatiq's own (the same encoding, a `redis_message_id` of their own, the same
script and arguments as `RedisBroker.enqueue`): the workers cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis.exceptions import NoScriptError

from core.broker import EXECUTE_RESPONSE, EXECUTE_RUN, RUNS_QUEUE
from core.doorbell import DOORBELL_LENGTH, doorbell_key

log = logging.getLogger("assistd.broker")


def message(run_id: str) -> tuple[str, bytes]:
    """The queue message for a run (or a response) and its id in Redis."""
    actor = EXECUTE_RESPONSE if run_id.startswith("resp_") else EXECUTE_RUN
    redis_id = str(uuid.uuid4())
    sent: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=RUNS_QUEUE,
        actor_name=actor,
        args=(run_id,),
        kwargs={},
        options={"redis_message_id": redis_id},
    )
    return redis_id, sent.encode()


def dispatch_args(broker: RedisBroker, command: str, unpack: int, *args: Any) -> list[Any]:
    """The arguments of dramatiq's dispatch script for `command` on the runs queue, as
    `RedisBroker._dispatch` gives them (its heartbeat is `broker`'s, as are its acks)."""
    return [
        command,
        int(time.time() * 1000),
        RUNS_QUEUE,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        broker._should_do_maintenance(command),
        unpack,
        *args,
    ]


class LoopSender:
    """`sender(run_id)` from the event loop: sent on the loop's next turn, never awaited by the
    caller. The run is already stored: if Redis refuses, the ids are dropped with a warning and the
    workers' sweeper re-sends them later (as it always did for a lost enqueue)."""

    def __init__(self, broker: RedisBroker, url: str) -> None:
        self.broker, self.url = broker, url
        self._clients: dict[int, Any] = {}  # one per event loop (redis.asyncio is loop-bound)
        self._script = broker.scripts["dispatch"]  # dramatiq's Lua: enqueue, fetch, ack, ...
        self._pending: list[str] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._unpack: int | None = None

    def __call__(self, run_id: str) -> None:
        self._pending.append(run_id)
        if len(self._pending) == 1:  # the first of this turn: flush once the turn is over
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        ids, self._pending = self._pending, []
        try:
            await self._send(ids)
        except NoScriptError:  # Redis was restarted or flushed its scripts: load it again
            try:
                await self._client().script_load(self._script.script)
                await self._send(ids)
            except Exception:
                self._dropped(ids)
        except Exception:
            self._dropped(ids)

    def _dropped(self, ids: list[str]) -> None:
        log.warning("could not enqueue %s; the sweeper will re-send them", ", ".join(ids), exc_info=True)

    async def _send(self, ids: list[str]) -> None:
        broker = self.broker
        unpack = self._unpack
        if unpack is None:  # dramatiq asks Redis once per process (a blocking call)
            unpack = self._unpack = int(await asyncio.to_thread(broker._max_unpack_size))
        pipe = self._client().pipeline(transaction=False)
        for run_id in ids:
            redis_id, encoded = message(run_id)
            args = dispatch_args(broker, "enqueue", unpack, redis_id, encoded)
            pipe.evalsha(self._script.sha, 1, broker.namespace, *args)
        key = doorbell_key(broker.namespace, RUNS_QUEUE)
        pipe.lpush(key, *([1] * len(ids)))
        pipe.ltrim(key, 0, DOORBELL_LENGTH - 1)
        await pipe.execute()

    def _client(self) -> Any:
        loop = id(asyncio.get_running_loop())
        if (client := self._clients.get(loop)) is None:
            from core.redis_client import async_client

            client = self._clients[loop] = async_client(self.url)
        return client

    async def aclose(self) -> None:
        """Send what is pending, then close this event loop's connection."""
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()


def sender(redis_url: str | None) -> Any:
    """What the API hands run ids to: a LoopSender on Redis; in embedded mode dramatiq's
    in-memory queue, put to at once (it never waits)."""
    from core.broker import broker, enqueue_run

    if redis_url and isinstance(broker, RedisBroker):
        return LoopSender(broker, redis_url)
    return enqueue_run
