"""The run store on SQLAlchemy Core (no ORM unit of work) for SQLite, its statements run on the
event loop's thread (store/inline.py).

Every lifecycle write is one transaction guarded by `owner = me AND status = ...`: a worker
whose lease lapsed and whose run another worker took over writes nothing of its attempt.
"""

from __future__ import annotations

from typing import Any, NoReturn, cast

from sqlalchemy import Table, Text, bindparam, delete, func, insert, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError

from core.errors import BadCursor, Conflict
from core.models import ACTIVE_RUN_STATUSES, MESSAGES, RUNS, STEPS, THREADS
from core.responses import ITEMS, RESPONSES
from core.store.base import (
    Chars,
    Claimed,
    ClaimedResponse,
    Inserts,
    MessageRow,
    PageParams,
    ResponseRow,
    RunRow,
    StepRow,
    after_cursor,
    listed_ascending,
    turned,
)
from core.store.inline import InlineConnection, InlineEngine

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
ACTIVE = select(_c.id).where(_c.thread_id == bindparam("thread_id"), _c.status.in_(ACTIVE_RUN_STATUSES))
ROUNDS = (
    select(STEPS.c.type, STEPS.c.step_details)
    .where(STEPS.c.run_id == bindparam("run_id"))
    .order_by(STEPS.c.seq)
)
_r = RESPONSES.c
CLAIM_RESPONSE = (
    update(RESPONSES)
    .where(_r.id == bindparam("response_id"), _r.status == "queued")
    .values(
        status="in_progress",
        owner=bindparam("owner"),
        lease_until=bindparam("lease_until"),
        started_at=func.coalesce(_r.started_at, bindparam("t")),
        attempts=_r.attempts + 1,
    )
    .returning(*RESPONSES.c)
)
CANCEL_RESPONSE = (
    update(RESPONSES)
    .where(_r.id == bindparam("response_id"), _r.status.in_(("queued", "in_progress")))
    .values(status="cancelled", owner=None, lease_until=None)
    .returning(*RESPONSES.c)
)
# A response's context: the items of its previous responses (the chain, oldest response first,
# each one's input before its output) or of its conversation (by `seq`), then its own input.
CHAIN_ITEMS = text(
    "WITH RECURSIVE chain(id, prev, depth) AS ("
    " SELECT id, previous_response_id, 0 FROM responses WHERE id = :prev AND project = :project"
    " UNION ALL SELECT r.id, r.previous_response_id, c.depth + 1 FROM responses r JOIN chain c ON r.id = c.prev"
    " WHERE c.depth < 10000 AND r.project = :project)"
    " SELECT data FROM (SELECT i.data AS data, c.depth AS depth, i.output AS output, i.seq AS seq"
    " FROM items i JOIN chain c ON i.response_id = c.id"
    " UNION ALL SELECT data, -1, output, seq FROM items WHERE response_id = :me AND output = false) x"
    " ORDER BY depth DESC, output, seq"
).columns(data=ITEMS.c.data.type)
CONVERSATION_ITEMS = text(
    "SELECT data FROM items WHERE conversation_id = :conversation OR (response_id = :me AND output = false)"
    " ORDER BY seq"
).columns(data=ITEMS.c.data.type)
OWN_ITEMS = text("SELECT data FROM items WHERE response_id = :me AND output = false ORDER BY seq").columns(
    data=ITEMS.c.data.type
)
_INSERTS: dict[Table, Any] = {}


def _insert(table: Table) -> Any:
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    return statement


def _conflict(exc: IntegrityError) -> NoReturn:
    if "unique" not in str(exc.orig).lower():  # a NOT NULL or CHECK: a bug, not a conflict
        raise exc
    raise Conflict(str(exc.orig)) from None


def _held(table: Table, row_id: str, owner: str, status: str) -> Any:
    c = table.c
    return update(table).where(c.id == row_id, c.owner == owner, c.status == status)


class SqlStore:
    def __init__(self, engine: InlineEngine) -> None:
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
            _conflict(exc)

    async def insert_into_thread(
        self, thread_id: str, project: str, inserts: list[tuple[Table, list[dict[str, Any]]]], *, idle: bool
    ) -> bool:
        t = THREADS.c
        guard = select(t.id).where(t.id == thread_id, t.project == project)
        if idle:
            guard = guard.where(~ACTIVE.params(thread_id=thread_id).exists())
        try:
            async with self.engine.begin() as conn:
                if (await conn.execute(guard)).first() is None:
                    return False
                for table, rows in inserts:
                    if rows:
                        await conn.execute(_insert(table), rows)
        except IntegrityError as exc:
            _conflict(exc)
        return True

    async def active_run(self, thread_id: str) -> str | None:
        async with self.engine.connect() as conn:
            return cast("str | None", (await conn.execute(ACTIVE, {"thread_id": thread_id})).scalar())

    async def page(self, table: Table, where: dict[str, Any], params: PageParams) -> tuple[list[Any], bool]:
        matching = [table.c[k] == v for k, v in where.items()]
        query = select(table).where(*matching)
        async with self.engine.connect() as conn:
            for cursor, name in ((params.after, "after"), (params.before, "before")):
                if cursor is None:
                    continue
                at = (await conn.execute(select(table.c.seq).where(table.c.id == cursor, *matching))).scalar()
                if at is None:
                    raise BadCursor(name, cursor)
                query = query.where(table.c.seq > at if after_cursor(params, name) else table.c.seq < at)
            ascending = listed_ascending(params)
            query = query.order_by(table.c.seq.asc() if ascending else table.c.seq.desc())
            rows = list((await conn.execute(query.limit(params.limit + 1))).all())
        return turned(rows, params)

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

    async def claim_response(
        self, response_id: str, owner: str, lease_until: float, t: float
    ) -> ClaimedResponse | None:
        params = {"response_id": response_id, "owner": owner, "lease_until": lease_until, "t": t}
        async with self.engine.begin() as conn:
            row = cast("ResponseRow | None", (await conn.execute(CLAIM_RESPONSE, params)).first())
            if row is None:
                return None
            query, args = context_query(row)
            items = [r.data for r in await conn.execute(query, args)]
        return ClaimedResponse(row, items)

    async def finish_response(
        self,
        response_id: str,
        owner: str,
        values: dict[str, Any],
        outputs: list[dict[str, Any]],
        conversation_id: str | None,
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(_held(RESPONSES, response_id, owner, "in_progress").values(**values))
            if result.rowcount != 1:
                await conn.rollback()
                return False
            if conversation_id is not None:
                await conn.execute(
                    update(ITEMS)
                    .where(ITEMS.c.response_id == response_id)
                    .values(conversation_id=conversation_id)
                )
            if outputs:
                await conn.execute(
                    _insert(ITEMS), [o | {"conversation_id": conversation_id} for o in outputs]
                )
        return True

    async def cancel_response(self, response_id: str, t: float) -> ResponseRow | None:
        async with self.engine.begin() as conn:
            return cast(
                "ResponseRow | None",
                (await conn.execute(CANCEL_RESPONSE, {"response_id": response_id})).first(),
            )

    async def forget_response(self, response_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(ITEMS).where(ITEMS.c.response_id == response_id, ITEMS.c.conversation_id.is_(None))
            )
            await conn.execute(delete(RESPONSES).where(RESPONSES.c.id == response_id))

    async def close(self) -> None:
        await self.engine.dispose()


def context_query(row: ResponseRow) -> tuple[Any, dict[str, Any]]:
    """The statement that reads a response's context, and its parameters."""
    if row.conversation_id is not None:
        return CONVERSATION_ITEMS, {"conversation": row.conversation_id, "me": row.id}
    if row.previous_response_id is not None:
        return CHAIN_ITEMS, {"prev": row.previous_response_id, "project": row.project, "me": row.id}
    return OWN_ITEMS, {"me": row.id}


async def _reads(conn: InlineConnection, run: RunRow, chars: Chars, steps: bool) -> Claimed:
    thread = (await conn.execute(THREAD, {"thread_id": run.thread_id, "chars": chars(run)})).all()
    rounds = (await conn.execute(ROUNDS, {"run_id": run.id})).all() if steps else []
    return Claimed(run, cast("list[MessageRow]", thread), cast("list[StepRow]", rounds))
