"""`assistd serve --workers N`: the API processes reach the serving process's queue, event log and
rate-limit counters through a Unix socket (the hub; its side is assistd/hub.py).

Embedded mode keeps those three in memory, where one process's API and worker share them. With
several API processes the worker stays in the parent, with the memory ones, and each API process
talks to them here instead of to Redis: the same operations as the Redis classes, one JSON line
each way (`[id, op, args]` -> `[id, result]` or `[id, null, error]`; id 0 asks for no answer).
The database is the one SQLite file they all open (WAL, core/db.py).

A run id lost on the way (the parent gone) stays `queued` in the database: the parent sends every
queued run again when it starts, and its sweeper re-sends ids that wait too long, as in Redis's
case.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.quotas import Usage

log = logging.getLogger("assistd.hub")
LINE_LIMIT = 64 * 1024 * 1024  # one event log page of large events fits


def _line(call_id: int, op: str, args: Iterable[Any]) -> bytes:
    return json.dumps([call_id, op, list(args)], separators=(",", ":")).encode() + b"\n"


class HubError(ConnectionError):
    """The hub is unreachable, or it failed the operation."""


class _Connection:
    """One event loop's connection: calls in flight by id, answers read by one task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 1
        self.closed = False
        self.reading = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                call_id, result, *error = json.loads(line)
                future = self.waiting.pop(call_id, None)
                if future is None or future.done():
                    continue
                if error:
                    future.set_exception(HubError(error[0]))
                else:
                    future.set_result(result)
        except (OSError, ValueError) as exc:
            log.warning("hub connection failed: %s", exc)
        finally:
            self.closed = True
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(HubError("the serving process's hub closed the connection"))
            self.waiting.clear()
            self.writer.close()

    async def call(self, op: str, args: Iterable[Any]) -> Any:
        if self.closed:
            raise HubError("the serving process's hub closed the connection")
        call_id, self.next_id = self.next_id, self.next_id + 1
        future = asyncio.get_running_loop().create_future()
        self.waiting[call_id] = future
        self.writer.write(_line(call_id, op, args))
        return await future

    async def aclose(self) -> None:
        self.writer.close()
        self.reading.cancel()


class HubClient:
    """Calls to the hub at `path`: a connection per event loop, opened on first use and again
    after a failure; `send` for the callers that are not coroutines (the broker's enqueue)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connections: dict[int, _Connection] = {}
        self._local = threading.local()

    async def call(self, op: str, *args: Any) -> Any:
        loop = id(asyncio.get_running_loop())
        conn = self._connections.get(loop)
        if conn is None or conn.closed:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path, limit=LINE_LIMIT)
            except OSError as exc:
                raise HubError(f"cannot reach the serving process's hub at {self.path}: {exc}") from exc
            opened = _Connection(reader, writer)
            conn = self._connections.get(loop)
            if conn is None or conn.closed:
                conn = self._connections[loop] = opened
            else:  # another call of this loop opened one meanwhile: use that one
                await opened.aclose()
        return await conn.call(op, args)

    def send(self, op: str, *args: Any) -> None:
        """Send without waiting for an answer, from any thread (a socket per thread)."""
        sock: socket.socket | None = getattr(self._local, "sock", None)
        try:
            if sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.path)
                self._local.sock = sock
            sock.sendall(_line(0, op, args))
        except OSError as exc:
            if sock is not None:
                sock.close()
            self._local.sock = None
            raise HubError(f"cannot reach the serving process's hub at {self.path}: {exc}") from exc

    async def aclose(self) -> None:
        """Close this event loop's connection, and this thread's socket for `send`."""
        conn = self._connections.pop(id(asyncio.get_running_loop()), None)
        if conn is not None:
            await conn.aclose()
        if (sock := getattr(self._local, "sock", None)) is not None:
            sock.close()
            self._local.sock = None


class HubEventLog:
    """The serving process's event log (core/events.py's MemoryEventLog), from an API process."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    async def publish(self, run_id: str, events: Iterable[tuple[str, str]]) -> None:
        await self.client.call("publish", run_id, list(events))

    async def last(self, run_id: str) -> str:
        return str(await self.client.call("last", run_id))

    async def last_event(self, run_id: str) -> tuple[str, str] | None:
        got = await self.client.call("last_event", run_id)
        return (got[0], got[1]) if got else None

    async def read(self, run_id: str, after: str, block_ms: int) -> list[tuple[str, str, str]]:
        got = await self.client.call("read", run_id, after, block_ms)
        return [(p, n, d) for p, n, d in got]

    async def ping(self) -> None:
        await self.client.call("ping")

    async def aclose(self) -> None:
        await self.client.aclose()


class HubCounters:
    """The serving process's rate-limit counters, from an API process."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    async def hit(self, project: str, request: bool, tokens: bool) -> Usage:
        requests, requests_reset, spent, tokens_reset = await self.client.call(
            "hit", project, request, tokens
        )
        return Usage(requests, requests_reset, spent, tokens_reset)

    async def spend(self, project: str, tokens: int) -> None:
        await self.client.call("spend", project, tokens)

    async def aclose(self) -> None:
        await self.client.aclose()


class HubBroker(StubBroker):
    """An API process's broker: a message goes to the serving process's queue (its worker's)."""

    def __init__(self, client: HubClient) -> None:
        super().__init__()
        self.client = client

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        if delay is not None:  # the API never delays a message; a worker's retry does, in the parent
            raise ValueError("an API process cannot send a delayed message")
        self.client.send("enqueue", message.encode().decode())
        return message


_client: HubClient | None = None


def client(path: str) -> HubClient:
    """The process's client (one, so that the event log and the counters share connections)."""
    global _client
    if _client is None:
        _client = HubClient(path)
    return _client
