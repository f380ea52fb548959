"""The run store's SQLite statements on the event loop's thread (core/store/inline.py): a write
that finds the lock taken waits without stopping the loop, reads go on meanwhile, a failed
transaction leaves nothing and frees the lock, and a lock held too long is an error, not a hang."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from core.store import inline
from core.store.inline import InlineEngine

INSERT = text("INSERT INTO t (id) VALUES (:id)")


def _engine(tmp_path: Path) -> tuple[InlineEngine, sqlite3.Connection]:
    path = tmp_path / "db.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    return InlineEngine.open(f"sqlite:///{path}"), other


async def _ids(engine: InlineEngine) -> list[int]:
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(text("SELECT id FROM t ORDER BY id"))]


def test_a_write_waits_for_the_lock_without_stopping_the_loop(tmp_path: Path) -> None:
    engine, other = _engine(tmp_path)

    async def main() -> tuple[int, list[int], list[int], float]:
        other.execute("BEGIN IMMEDIATE")  # another connection (the ORM's, a process's) writes
        other.execute("INSERT INTO t (id) VALUES (1)")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        async def write() -> float:
            async with engine.begin() as conn:
                await conn.execute(INSERT, {"id": 2})
            return time.monotonic()

        running = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done()
        during = await _ids(engine)  # a read is not held up (WAL), and sees no uncommitted row
        released = time.monotonic()
        other.execute("COMMIT")
        done_at = await asyncio.wait_for(writing, 5)
        running.cancel()
        return ticks, during, await _ids(engine), done_at - released

    ticks, during, after, delay = asyncio.run(main())
    assert ticks >= 30  # the loop ran on while the write waited (a blocked loop: 1 or 2)
    assert during == [] and after == [1, 2]
    assert delay < 0.1
    other.close()


def test_a_failed_transaction_leaves_nothing_and_frees_the_lock(tmp_path: Path) -> None:
    engine, other = _engine(tmp_path)

    async def main() -> list[int]:
        async with engine.begin() as conn:
            await conn.execute(INSERT, {"id": 1})
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(INSERT, {"id": 2})
                await conn.execute(INSERT, {"id": 1})  # taken
        async with engine.begin() as conn:  # an explicit rollback, then the block ends
            await conn.execute(INSERT, {"id": 3})
            await conn.rollback()
        return await _ids(engine)

    assert asyncio.run(main()) == [1]
    other.execute("BEGIN IMMEDIATE")  # the lock is free: taken at once
    other.execute("ROLLBACK")
    other.close()


def test_a_lock_held_too_long_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, other = _engine(tmp_path)
    monkeypatch.setattr(inline, "LOCK_WAIT_SECONDS", 0.3)
    other.execute("BEGIN IMMEDIATE")

    async def main() -> None:
        async with engine.begin() as conn:
            await conn.execute(INSERT, {"id": 1})

    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        asyncio.run(main())
    assert 0.3 <= time.monotonic() - started < 2
    other.execute("ROLLBACK")
    other.close()
