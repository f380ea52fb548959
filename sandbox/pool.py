"""The warm pool: containers started and pinged ahead of time, so a new session skips start-up."""

from __future__ import annotations

import asyncio
import logging

from sandbox.engine import Engine

log = logging.getLogger("assistd.sandbox")


class Pool:
    def __init__(self, engine: Engine, size: int) -> None:
        self.engine = engine
        self.size = size
        self.ready: list[str] = []
        self.starting = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def fill(self) -> None:
        """Start containers in the background until `size` are ready or starting."""
        while not self.closed and len(self.ready) + self.starting < self.size:
            self.starting += 1
            task = asyncio.create_task(self._start_one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _start_one(self) -> None:
        try:
            cid = await self.engine.run()
        except Exception as exc:  # the engine went away: the next take() tries again
            log.warning("sandbox pool: cannot start a container: %s", exc)
            return
        finally:
            self.starting -= 1
        if self.closed:
            await self.engine.remove(cid)
        else:
            self.ready.append(cid)

    async def take(self) -> str:
        """A warm container if one is ready, else a cold start (the pool refills meanwhile)."""
        cid = self.ready.pop(0) if self.ready else None
        self.fill()
        return cid if cid is not None else await self.engine.run()

    async def close(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        ready, self.ready = self.ready, []
        await asyncio.gather(*(self.engine.remove(cid) for cid in ready), return_exceptions=True)
