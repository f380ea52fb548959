"""Ingestion's turns: round-robin across projects, oldest group first within one (issue 17)."""

from __future__ import annotations

import asyncio

from workers.ingest.turns import Turn, Turns


async def settle() -> None:
    """Let the woken tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_waiting_project_gets_the_next_offered_turn() -> None:
    async def go() -> None:
        turns = Turns(2)
        a1, a2, a3 = (Turn(turns, "a", i) for i in (1, 2, 3))
        await a1.take()
        await a2.take()
        new_a = asyncio.create_task(a3.take())  # a new group of a: waits behind b
        await settle()
        b = Turn(turns, "b", 4)
        got_b = asyncio.create_task(b.take())
        await settle()
        assert not got_b.done()
        offered = asyncio.create_task(a1.offer())  # a1 steps aside for b, then waits, ahead of a3
        await settle()
        assert got_b.done() and not offered.done() and not new_a.done()
        await a2.offer()  # only a waits: a2 keeps its turn
        assert a2.held
        b.give_back()  # the turn goes back to a: its oldest group first
        await settle()
        assert offered.done() and not new_a.done()
        a2.give_back()
        await settle()
        assert new_a.done()
        a1.give_back()
        a3.give_back()
        a3.give_back()  # twice: counted once
        assert turns.free == 2 and not turns.round and not turns.waiters

    asyncio.run(go())


def test_a_cancelled_waiter_leaves_no_trace() -> None:
    async def go() -> None:
        turns = Turns(1)
        a = Turn(turns, "a", 1)
        await a.take()
        b = asyncio.create_task(Turn(turns, "b", 2).take())
        await settle()
        assert turns.others_wait("a")
        b.cancel()
        await asyncio.gather(b, return_exceptions=True)
        assert not turns.others_wait("a") and not turns.waiters
        a.give_back()
        assert turns.free == 1

    asyncio.run(go())
