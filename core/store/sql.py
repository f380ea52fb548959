"""The run store on SQLAlchemy Core (no ORM unit of work): SQLite, or any database.

Every lifecycle write is one transaction guarded by `owner = me AND status = ...`: a worker
whose lease lapsed and whose run another worker took over writes nothing of its attempt.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, func, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.errors import Conflict
from core.models import MESSAGES, RUNS, STEPS
from core.store.base import Chars, Claimed, Inserts, MessageRow, RunRow, StepRow

# Statements built once: SQLAlchemy memoizes their cache keys, which matters on the hot path.
_c = RUNS.c
CLAIM = (
    update(RUNS)
    .where(_c.id == bindparam("run_id"), _c.status == "queued")
    .values(
        status="in_progress",
        owner=bindparam("owner"),
        lease_until=bindparam("lease_until"),
        started_at=func.coalesce(_c.started_at, bindparam("t")),
        attempts=_c.attempts + 1,
    )
    .returning(*RUNS.c)
)
CANCEL_QUEUED = (
    update(RUNS)
    .where(_c.id == bindparam("run_id"), _c.status == "cancelling", _c.owner.is_(None))
    .values(status="cancelled", cancelled_at=bindparam("t"), expires_at=None)
    .returning(*RUNS.c)
)
_m = MESSAGES.c
_size = func.length(sql_cast(_m.content, Text))
# The thread's newest messages whose newer neighbours hold fewer than `chars` characters of
# content: older ones could never fit the prompt (a token is at least about four characters), so
# a round never loads a long thread whole.
_newest = (
    select(
        _m.id,
        _m.seq,
        _m.role,
        _m.content,
        _m.run_id,
        _m.attachments,
        (func.sum(_size).over(order_by=_m.seq.desc()) - _size).label("newer"),
    )
    .where(_m.thread_id == bindparam("thread_id"))
    .subquery()
)
THREAD = (
    select(_newest.c.id, _newest.c.role, _newest.c.content, _newest.c.run_id, _newest.c.attachments)
    .where(_newest.c.newer <= bindparam("chars"))
    .order_by(_newest.c.seq)
)
ROUNDS = (
    select(STEPS.c.type, STEPS.c.step_details)
    .where(STEPS.c.run_id == bindparam("run_id"))
    .order_by(STEPS.c.seq)
)
_INSERTS: dict[Table, Any] = {}


def _insert(table: Table) -> Any:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    return statement


def _held(table: Table, row_id: str, owner: str, status: str) -> Any:
    c = table.c
    return update(table).where(c.id == row_id, c.owner == owner, c.status == status)


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def owned(self, table: Table, object_id: str, project: str) -> Any | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(select(table).where(table.c.id == object_id, table.c.project == project))
            ).first()

    async def owned_ids(self, table: Table, ids: list[str], project: str) -> set[str]:
        async with self.engine.connect() as conn:
            query = select(table.c.id).where(table.c.id.in_(ids), table.c.project == project)
            return set((await conn.execute(query)).scalars())

    async def insert(self, inserts: list[tuple[Table, list[dict[str, Any]]]]) -> None:
        try:
            async with self.engine.begin() as conn:
                for table, rows in inserts:
                    if rows:
                        await conn.execute(_insert(table), rows)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    async def claim_run(
        self, run_id: str, owner: str, lease_until: float, t: float, chars: Chars
    ) -> tuple[Claimed | None, RunRow | None]:
        async with self.engine.begin() as conn:
            params = {"run_id": run_id, "owner": owner, "lease_until": lease_until, "t": t}
            run = cast("RunRow | None", (await conn.execute(CLAIM, params)).first())
            if run is None:
                # a run cancelled while queued is finished off by whoever receives its id
                return None, cast("RunRow | None", (await conn.execute(CANCEL_QUEUED, params)).first())
            # usage is set once a round has been recorded: only then are there steps to replay
            return await _reads(conn, run, chars, steps=bool(run.usage)), None

    async def reload_run(self, run_id: str, owner: str, chars: Chars) -> Claimed | None:
        async with self.engine.connect() as conn:
            query = select(RUNS).where(_c.id == run_id, _c.owner == owner, _c.status == "in_progress")
            run = cast("RunRow | None", (await conn.execute(query)).first())
            return None if run is None else await _reads(conn, run, chars, steps=True)

    async def finish(
        self, table: Table, row_id: str, owner: str, values: dict[str, Any], inserts: Inserts
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(_held(table, row_id, owner, "in_progress").values(**values))
            if result.rowcount != 1:
                await conn.rollback()
                return False
            for target, row in inserts:
                await conn.execute(_insert(target), row)
        return True

    async def stop(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> Any | None:
        async with self.engine.begin() as conn:
            statement = _held(table, row_id, owner, "cancelling").values(**values).returning(*table.c)
            return (await conn.execute(statement)).first()

    async def release(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(_held(table, row_id, owner, "in_progress").values(**values))
        return bool(result.rowcount)

    async def close(self) -> None:
        """The engine is its owner's to dispose of."""


async def _reads(conn: AsyncConnection, run: RunRow, chars: Chars, steps: bool) -> Claimed:
    thread = (await conn.execute(THREAD, {"thread_id": run.thread_id, "chars": chars(run)})).all()
    rounds = (await conn.execute(ROUNDS, {"run_id": run.id})).all() if steps else []
    return Claimed(run, cast("list[MessageRow]", thread), cast("list[StepRow]", rounds))
