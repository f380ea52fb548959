"""Run events for streaming: an ordered, replayable log per run.

Workers and the API append server-sent events (name + JSON data) to a run's log; the API
relays a log to a streaming client from any position, so a client that starts reading late
still gets every event from the first one, in order. Distributed mode keeps the logs in
Redis Streams (bounded with MAXLEN, expiring an hour after the run stops); embedded mode
keeps them in the serving process's memory (core/hub.py when it has several API processes).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

STOPS = {
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.cancelled",  # ours, never relayed: a cancelled response's log ends with it
    "thread.run.completed",
    "thread.run.incomplete",
    "thread.run.failed",
    "thread.run.cancelled",
    "thread.run.expired",
    "thread.run.requires_action",
}
KEEP_SECONDS = 3600
MAX_EVENTS = 100_000

Event = tuple[str, str, str]  # (position, event name, JSON data)


class EventLog(Protocol):
    async def publish(self, run_id: str, events: Iterable[tuple[str, str]]) -> None: ...

    async def last(self, run_id: str) -> str: ...

    async def last_event(self, run_id: str) -> tuple[str, str] | None:
        """The log's last event (name, data), if it has one."""

    async def read(self, run_id: str, after: str, block_ms: int) -> list[Event]: ...

    async def aclose(self) -> None: ...

    async def ping(self) -> None: ...


class RedisEventLog:
    """One Redis Stream per run; a client per event loop (redis.asyncio is loop-bound)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        from core.redis_client import async_client

        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            # No socket timeout: a blocking XREAD waits longer than redis-py's 5 s default.
            client = self._clients[loop] = async_client(self.url, socket_timeout=None)
        return client

    def _key(self, run_id: str) -> str:
        return f"{self.namespace}:events:{run_id}"

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._client().ping()

    async def aclose(self) -> None:
        """Close this event loop's connection."""
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()

    async def publish(self, run_id: str, events: Iterable[tuple[str, str]]) -> None:
        key = self._key(run_id)
        pipe = self._client().pipeline(transaction=False)
        stops = False
        for name, data in events:
            pipe.xadd(key, {"e": name, "d": data}, maxlen=MAX_EVENTS, approximate=True)
            stops = stops or name in STOPS
        pipe.expire(key, KEEP_SECONDS if stops else KEEP_SECONDS * 24)
        await pipe.execute()

    async def last(self, run_id: str) -> str:
        got = await self._client().xrevrange(self._key(run_id), count=1)
        return got[0][0].decode() if got else "0"

    async def last_event(self, run_id: str) -> tuple[str, str] | None:
        got = await self._client().xrevrange(self._key(run_id), count=1)
        return (got[0][1][b"e"].decode(), got[0][1][b"d"].decode()) if got else None

    async def read(self, run_id: str, after: str, block_ms: int) -> list[Event]:
        got = await self._client().xread({self._key(run_id): after}, block=block_ms, count=1000)
        if not got:
            return []
        return [(eid.decode(), f[b"e"].decode(), f[b"d"].decode()) for eid, f in got[0][1]]


class MemoryEventLog:
    """Embedded mode: the logs live in this process, shared by the API's and the worker's loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[tuple[str, str]]] = {}
        self._stopped: dict[str, float] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    async def aclose(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def publish(self, run_id: str, events: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            log = self._logs.setdefault(run_id, [])
            for name, data in events:
                log.append((name, data))
                if name in STOPS:
                    self._stopped[run_id] = time.monotonic()
            waiters = self._waiters.pop(run_id, [])
            self._forget_old()
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - KEEP_SECONDS
        for run_id in [r for r, t in self._stopped.items() if t < cutoff]:
            self._logs.pop(run_id, None)
            self._stopped.pop(run_id, None)

    async def last(self, run_id: str) -> str:
        with self._lock:
            return str(len(self._logs.get(run_id, [])))

    async def last_event(self, run_id: str) -> tuple[str, str] | None:
        with self._lock:
            log = self._logs.get(run_id)
            return log[-1] if log else None

    async def read(self, run_id: str, after: str, block_ms: int) -> list[Event]:
        start = int(after)
        event = asyncio.Event()
        with self._lock:
            log = self._logs.get(run_id, [])
            if len(log) <= start:
                self._waiters.setdefault(run_id, []).append((asyncio.get_running_loop(), event))
            else:
                return [(str(i + 1), n, d) for i, (n, d) in enumerate(log[start:], start)]
        try:
            await asyncio.wait_for(event.wait(), block_ms / 1000)
        except asyncio.TimeoutError:
            return []
        with self._lock:
            log = self._logs.get(run_id, [])
            return [(str(i + 1), n, d) for i, (n, d) in enumerate(log[start:], start)]


_log: EventLog | None = None


def event_log() -> EventLog:
    """The process's event log: Redis when REDIS_URL is set; otherwise memory, or the serving
    process's memory in an API process of `assistd serve --workers N`."""
    global _log
    if _log is None:
        from core.config import get_settings

        settings = get_settings()
        if settings.redis_url:
            _log = RedisEventLog(settings.redis_url, settings.redis_namespace)
        elif settings.hub:
            from core.hub import HubEventLog, client

            _log = HubEventLog(client(settings.hub))
        else:
            _log = MemoryEventLog()
    return _log
