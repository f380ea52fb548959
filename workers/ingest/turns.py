"""Ingestion's turns: a worker's `ingest_concurrency` places to work, shared fairly by projects.

Handed out first come, first served, three large files of one project held another project's
one-line file for minutes: a group of files kept its place until every chunk was embedded. Here a
group holds a turn while it works and offers it between steps (`Turn.offer`, before each
embedding request): when a project holding fewer turns waits, the turn goes to it and the group
queues for its next turn. Within a project the oldest group goes first, so a project has
at most as many groups started (their chunks in memory) as there are turns, and a new group of
it starts only when none of its started ones waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque


class Turns:
    """`size` turns. A freed turn goes to the waiting project that holds the fewest (the longest
    waiting of those first); within a project, to the lowest priority number."""

    def __init__(self, size: int) -> None:
        self.free = max(1, size)
        self.held: dict[str, int] = {}  # project -> turns it holds
        self.waiters: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {}  # project -> heap
        self.round: deque[str] = deque()  # projects with waiters, longest waiting first
        self.order = itertools.count()  # ties within a priority: first come first

    async def take(self, project: str, priority: int) -> None:
        """Wait for a turn (hand it back with `give_back`)."""
        if self.free and not self.round:
            self.free -= 1
            self.held[project] = self.held.get(project, 0) + 1
            return
        entry = (priority, next(self.order), asyncio.get_running_loop().create_future())
        heap = self.waiters.setdefault(project, [])
        if not heap:
            self.round.append(project)
        heapq.heappush(heap, entry)
        try:
            await entry[2]
        except asyncio.CancelledError:
            if entry[2].done() and not entry[2].cancelled():
                self.give_back(project)  # granted as it was cancelled: the turn goes on to the next waiter
            else:
                self._forget(project, entry)
            raise

    def give_back(self, project: str) -> None:
        """End a turn of `project`: a waiter gets it, or it is free."""
        self.held[project] -= 1
        if not self.held[project]:
            del self.held[project]
        while self.round:
            nxt = min(self.round, key=lambda p: self.held.get(p, 0))
            self.round.remove(nxt)
            heap = self.waiters[nxt]
            _, _, future = heapq.heappop(heap)
            if heap:
                self.round.append(nxt)
            else:
                del self.waiters[nxt]
            if not future.done():
                self.held[nxt] = self.held.get(nxt, 0) + 1
                future.set_result(None)
                return
        self.free += 1

    def others_wait(self, project: str) -> bool:
        """Whether a project holding fewer turns than `project` waits for one."""
        mine = self.held.get(project, 0)
        return any(p != project and self.held.get(p, 0) < mine for p in self.round)

    def _forget(self, project: str, entry: tuple[int, int, asyncio.Future[None]]) -> None:
        heap = self.waiters.get(project, [])
        if entry in heap:
            heap.remove(entry)
            heapq.heapify(heap)
        if not heap and project in self.waiters:
            del self.waiters[project]
            self.round.remove(project)


class Turn:
    """A group's hold on a turn: its project, its priority within the project, whether it holds one."""

    def __init__(self, turns: Turns, project: str, priority: int) -> None:
        self.turns, self.project, self.priority = turns, project, priority
        self.held = False

    async def take(self) -> None:
        await self.turns.take(self.project, self.priority)
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.turns.give_back(self.project)

    async def offer(self) -> None:
        """Hand the turn to a project that holds fewer, if one waits; then wait for the next turn.
        With one turn and two projects, they take turns request by request."""
        if self.turns.others_wait(self.project):
            self.give_back()
            await self.take()
