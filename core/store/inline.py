"""The run store's SQLite statements, run on the event loop's own thread.

Through aiosqlite every call (a cursor, its statement, its rows, its close) went to a thread of
the connection's and back: a queue, a wake-up through the loop's self-pipe, about a hundred
microseconds of CPU each, 18 of them for one message's create. A statement on a local SQLite
file takes a few microseconds: run here, the loop waits less than the hand-off cost.

The loop must never wait on SQLite's lock, though: the ORM's transactions (aiosqlite's, which
can hold the write lock across awaits of this very loop) and other processes take it too. So
these connections have no busy timeout. A write transaction begins with `BEGIN IMMEDIATE`, and
while another connection holds the write lock it is tried again after a pause in which the loop
runs on; once begun, nothing in it awaits and nothing in it waits on a lock (in WAL mode readers
never block the writer). A read that finds the database locked (rare in WAL mode: a checkpoint's
or a recovery's moment) is tried again the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import OperationalError

LOCK_WAIT_SECONDS = 10.0  # as long as the other connections' busy_timeout (core/db.py's BUSY_TIMEOUT_MS)
FIRST_PAUSE, LONGEST_PAUSE = 0.0005, 0.02


def _locked(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig)


async def _retry_locked(attempt: Any) -> Any:
    """`attempt()` until it is not refused for SQLite's lock; the loop runs on between tries."""
    pause, deadline = FIRST_PAUSE, time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return attempt()
        except OperationalError as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


class InlineConnection:
    """What the store uses of an AsyncConnection: `execute` and `rollback`, run at once."""

    def __init__(self, conn: Connection, in_transaction: bool) -> None:
        self.sync = conn
        self.in_transaction = in_transaction

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        if self.in_transaction:  # holds the write lock: nothing to wait for
            return self.sync.execute(statement, parameters)
        return await _retry_locked(lambda: self.sync.execute(statement, parameters))  # type: ignore[no-any-return]

    async def rollback(self) -> None:
        if self.in_transaction:
            self.sync.exec_driver_sql("ROLLBACK")
            self.in_transaction = False


class InlineEngine:
    """`connect()` and `begin()` as AsyncEngine has them, on a synchronous SQLite engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> InlineEngine:
        from core.db import sqlite_engine

        engine = sqlite_engine(
            url,
            busy_timeout_ms=0,  # the loop waits for the lock itself (`_retry_locked`)
            # the transactions are ours (BEGIN IMMEDIATE): the driver must not open its own
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False},  # the API's and the worker's loops share none
            pool_size=4,
            max_overflow=-1,  # a connection waiting out a lock is not one a loop may wait for
        )
        return cls(engine)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        with self.engine.connect() as conn:
            yield InlineConnection(conn, in_transaction=False)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[InlineConnection]:
        with self.engine.connect() as conn:
            await _retry_locked(lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            inline = InlineConnection(conn, in_transaction=True)
            try:
                yield inline
            except BaseException:
                await inline.rollback()
                raise
            if inline.in_transaction:
                conn.exec_driver_sql("COMMIT")

    async def dispose(self) -> None:
        self.engine.dispose()
