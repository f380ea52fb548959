"""Group commit: the outcomes of a store's files written together, one transaction per group.

Every transaction that changes a store's files takes the store's row lock and recounts its
files (retrieval/catalog.py). Written one file at a time, that lock is held for each file's
update, the recount of the store and of its batch, in turn: it capped a store at about 60 files/s
whatever the number of workers. Here a file whose ingestion ends waits for the group being
written (if any) and goes in the next one, with every other file that ended meanwhile: an
idle store still writes each file at once, a busy one writes tens per transaction.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """`await add(store_id, *items)` returns once `write(store_id, [...])` has written the items."""

    def __init__(self, write: Callable[[str, list[T]], Awaitable[None]]) -> None:
        self.write = write
        self.pending: dict[str, list[tuple[T, asyncio.Future[None]]]] = defaultdict(list)
        self.writers: dict[str, asyncio.Task[None]] = {}

    async def add(self, store_id: str, *items: T) -> None:
        if not items:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[store_id] += [(item, done) for item in items]
        if store_id not in self.writers:
            # a task of its own: a caller cancelled while it waits must not stop the others' group
            self.writers[store_id] = asyncio.create_task(self._drain(store_id))
        await done

    async def _drain(self, store_id: str) -> None:
        try:
            while self.pending.get(store_id):
                group = self.pending.pop(store_id)
                try:
                    await self.write(store_id, [item for item, _ in group])
                except Exception as exc:
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in group:
                        if not done.done():
                            done.set_result(None)
        finally:
            self.writers.pop(store_id, None)
            for _, done in self.pending.pop(store_id, []):  # cancelled mid-write: the rest is not written
                done.cancel()

    async def close(self) -> None:
        writers = list(self.writers.values())
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
