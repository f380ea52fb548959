"""The serving process's side of the hub (core/hub.py): the queue, the event log and the
rate-limit counters its worker uses, answered to the API processes of `assistd serve --workers N`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import dramatiq

from core.events import EventLog
from core.hub import LINE_LIMIT
from core.quotas import Counters

log = logging.getLogger("assistd.hub")


class Hub:
    """The serving process's side: the queue, the event log and the counters the worker uses."""

    def __init__(self, broker: dramatiq.Broker, events: EventLog, counters: Counters) -> None:
        self.broker, self.events, self.counters = broker, events, counters
        self.tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def serve(self, path: str) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._connection, path, limit=LINE_LIMIT)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                call_id, op, args = json.loads(line)
                if op == "read":  # it may wait: the connection's other calls go on meanwhile
                    task = asyncio.create_task(self._answer(writer, call_id, op, args))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                else:
                    await self._answer(writer, call_id, op, args)
        except (OSError, ValueError) as exc:
            log.warning("hub: dropped a connection: %s", exc)
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, op: str, args: list[Any]) -> None:
        try:
            answer: list[Any] = [call_id, await self._do(op, args)]
        except Exception as exc:
            log.warning("hub: %s failed", op, exc_info=True)
            answer = [call_id, None, f"{op} failed in the serving process: {exc}"]
        if call_id and not writer.is_closing():
            writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")

    async def _do(self, op: str, args: list[Any]) -> Any:
        if op == "enqueue":
            self.broker.enqueue(dramatiq.Message.decode(args[0].encode()))
        elif op == "publish":
            await self.events.publish(args[0], [(n, d) for n, d in args[1]])
        elif op == "read":
            return await self.events.read(args[0], args[1], int(args[2]))
        elif op == "last":
            return await self.events.last(args[0])
        elif op == "last_event":
            return await self.events.last_event(args[0])
        elif op == "hit":
            u = await self.counters.hit(args[0], bool(args[1]), bool(args[2]))
            return [u.requests, u.requests_reset, u.tokens, u.tokens_reset]
        elif op == "spend":
            await self.counters.spend(args[0], int(args[1]))
        elif op != "ping":
            raise ValueError(f"unknown operation {op!r}")
        return None
