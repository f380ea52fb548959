"""The run store straight on asyncpg, when the database is PostgreSQL.

Through SQLAlchemy a statement costs about as much CPU in its execution layer as in the
driver, and a transaction adds BEGIN and COMMIT round trips. The few writes every run makes
(its creation in the API, its claim and each round's end in the worker) go through here as
single statements instead: the claim is one UPDATE plus the reads the prompt needs; a round's
end is the guarded UPDATE of the run with the rows it writes as data-modifying CTEs that insert
only if the guard held, so it is still all or nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any
from typing import cast as typing_cast

import asyncpg
from sqlalchemy import ColumnDefault, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url

from core.errors import BadCursor, Conflict
from core.models import ACTIVE_RUN_STATUSES, RUNS
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

_DIALECT: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


class Record:
    """A row read here, used like SQLAlchemy's: `row.column` and `row._mapping`."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


def record(row: asyncpg.Record | None) -> Record | None:
    return None if row is None else Record(dict(row))


def records(rows: list[asyncpg.Record]) -> list[Record]:
    return [Record(dict(r)) for r in rows]


def quoted(name: str) -> str:
    return '"' + name + '"'


def columns(table: Table) -> str:
    """Every column of `table`, in order: what SQLAlchemy's `select(table)` reads."""
    return ", ".join(quoted(c.name) for c in table.columns)


class Params:
    """Positional parameters of one statement, each cast to its column's type (INSERT ... SELECT
    infers no types from the target columns)."""

    def __init__(self, *first: Any) -> None:
        self.values = list(first)

    def add(self, value: Any, table: Table | None = None, column: str | None = None) -> str:
        self.values.append(value)
        placeholder = f"${len(self.values)}"
        if table is None or column is None:
            return placeholder
        return f"{placeholder}::{cast(table, column)}"


@functools.cache
def cast(table: Table, column: str) -> str:
    """The column's type for a parameter cast, compiled once (this is on every run's path).

    Without the length: a cast to VARCHAR(n) cuts a longer value short, where the column itself
    refuses it."""
    return table.c[column].type.compile(dialect=_DIALECT).split("(")[0]


@functools.cache
def _defaults(table: Table) -> tuple[tuple[str, ColumnDefault | None], ...]:
    return tuple((c.name, c.default if isinstance(c.default, ColumnDefault) else None) for c in table.columns)


def with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the column defaults a SQLAlchemy insert would have filled in, in column order."""
    out: dict[str, Any] = {}
    for name, default in _defaults(table):
        if name in row:
            out[name] = row[name]
        elif default is not None:
            out[name] = default.arg(None) if default.is_callable else default.arg
    return out


def insert_rows(table: Table, rows: list[dict[str, Any]], params: Params, source: str | None = None) -> str:
    """INSERT of `rows` (one shape) into `table`; `source` names a CTE the rows are written only
    if it returned a row (a guard)."""
    full = [with_defaults(table, r) for r in rows]
    sql = _insert_sql(table, tuple(full[0]), len(params.values) + 1, len(full), source)
    for row in full:
        params.values.extend(row.values())
    return sql


@functools.lru_cache(maxsize=1024)
def _insert_sql(table: Table, names: tuple[str, ...], first: int, count: int, source: str | None) -> str:
    """The text of insert_rows' statement, built once per shape: it is on every create's path."""
    casts = [cast(table, name) for name in names]
    values = [
        ", ".join(f"${first + n * len(names) + i}::{c}" for i, c in enumerate(casts)) for n in range(count)
    ]
    columns = ", ".join(quoted(name) for name in names)
    if source is None:
        return f"INSERT INTO {table.name} ({columns}) VALUES " + ", ".join(f"({v})" for v in values)
    return f"INSERT INTO {table.name} ({columns}) " + " UNION ALL ".join(
        f"SELECT {v} FROM {source}" for v in values
    )


def _with(parts: list[str], guard: str | None = None) -> str:
    """Statements as one: all but the last data-modifying CTEs, after the `guard` (`ok`) they
    may select from."""
    *first, last = parts
    ctes = ([f"ok AS ({guard})"] if guard else []) + [f"i{i} AS ({p})" for i, p in enumerate(first)]
    return ("WITH " + ", ".join(ctes) + " " if ctes else "") + last


CLAIM = (
    "UPDATE runs SET status = 'in_progress', owner = $2, lease_until = $3, started_at = coalesce(started_at, $4), "
    f"attempts = attempts + 1 WHERE id = $1 AND status = 'queued' RETURNING {columns(RUNS)}"
)
CANCEL_QUEUED = (
    "UPDATE runs SET status = 'cancelled', cancelled_at = $2, expires_at = NULL "
    f"WHERE id = $1 AND status = 'cancelling' AND owner IS NULL RETURNING {columns(RUNS)}"
)
RELOAD = f"SELECT {columns(RUNS)} FROM runs WHERE id = $1 AND owner = $2 AND status = 'in_progress'"
# the newest messages a prompt could hold (see store/sql.py THREAD)
THREAD = (
    "SELECT id, role, content, run_id, attachments FROM (SELECT id, seq, role, content, run_id, attachments, "
    "sum(length(content::text)) OVER (ORDER BY seq DESC) - length(content::text) AS newer "
    "FROM messages WHERE thread_id = $1) m WHERE newer <= $2 ORDER BY seq"
)
ACTIVE = "SELECT id FROM runs WHERE thread_id = $1 AND status IN ({}) LIMIT 1".format(
    ", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES)
)
ROUNDS = "SELECT type, step_details FROM run_steps WHERE run_id = $1 ORDER BY seq"
# the claimed row, and with it the input items of a response that has no other context (the
# commonest: one round trip, not two)
CLAIM_RESPONSE = (
    "WITH r AS (UPDATE responses SET status = 'in_progress', owner = $2, lease_until = $3, "
    "started_at = coalesce(started_at, $4), attempts = attempts + 1 WHERE id = $1 AND status = 'queued' "
    f"RETURNING {columns(RESPONSES)}) "
    "SELECT r.*, CASE WHEN r.conversation_id IS NULL AND r.previous_response_id IS NULL THEN "
    "(SELECT coalesce(json_agg(i.data ORDER BY i.seq), '[]'::json) FROM items i "
    "WHERE i.response_id = r.id AND i.output = false) END AS own_items FROM r"
)
CANCEL_RESPONSE = (
    "UPDATE responses SET status = 'cancelled', owner = NULL, lease_until = NULL "
    f"WHERE id = $1 AND status IN ('queued', 'in_progress') RETURNING {columns(RESPONSES)}"
)
# a response's context (see store/sql.py CHAIN_ITEMS)
CHAIN_ITEMS = (
    "WITH RECURSIVE chain(id, prev, depth) AS ("
    " SELECT id, previous_response_id, 0 FROM responses WHERE id = $1 AND project = $2"
    " UNION ALL SELECT r.id, r.previous_response_id, c.depth + 1 FROM responses r JOIN chain c ON r.id = c.prev"
    " WHERE c.depth < 10000 AND r.project = $2)"
    " SELECT data FROM (SELECT i.data AS data, c.depth AS depth, i.output AS output, i.seq AS seq"
    " FROM items i JOIN chain c ON i.response_id = c.id"
    " UNION ALL SELECT data, -1, output, seq FROM items WHERE response_id = $3 AND output = false) x"
    " ORDER BY depth DESC, output, seq"
)
CONVERSATION_ITEMS = (
    "SELECT data FROM items WHERE conversation_id = $1 OR (response_id = $2 AND output = false) ORDER BY seq"
)


class PgStore:
    """The run store on a pool of asyncpg connections, opened on first use."""

    def __init__(self, url: str, size: int, pooler: str = "none") -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        # through a pooler in transaction mode, nothing prepared is kept (core/db.py)
        self._cache = 0 if pooler == "pgbouncer" else 100  # asyncpg's default
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # statements are prepared once per connection and reused (asyncpg's cache)
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._size,
                        init=_codecs,
                        reset=_reset,
                        statement_cache_size=self._cache,
                    )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def owned(self, table: Table, object_id: str, project: str) -> Record | None:
        """The row with this id in the caller's project."""
        sql = f"SELECT {columns(table)} FROM {table.name} WHERE id = $1 AND project = $2"
        return record(await (await self.pool()).fetchrow(sql, object_id, project))

    async def owned_ids(self, table: Table, ids: list[str], project: str) -> set[str]:
        """Which of these ids name rows of `table` in the caller's project."""
        sql = f"SELECT id FROM {table.name} WHERE id = ANY($1::text[]) AND project = $2"
        return {r["id"] for r in await (await self.pool()).fetch(sql, ids, project)}

    async def insert(self, inserts: list[tuple[Table, list[dict[str, Any]]]]) -> None:
        """Insert every group of rows in one statement: all of them or none."""
        params = Params()
        parts = [insert_rows(table, rows, params) for table, rows in inserts if rows]
        if parts:
            await self._write(_with(parts), params)

    async def insert_into_thread(
        self, thread_id: str, project: str, inserts: list[tuple[Table, list[dict[str, Any]]]], *, idle: bool
    ) -> bool:
        params = Params(thread_id, project)
        guard = "SELECT 1 FROM threads WHERE id = $1 AND project = $2" + (
            f" AND NOT EXISTS ({ACTIVE})" if idle else ""
        )
        parts = [insert_rows(table, rows, params, source="ok") for table, rows in inserts if rows]
        status = await self._write(_with(parts, guard), params)
        return not status.endswith(" 0")

    async def _write(self, sql: str, params: Params) -> str:
        try:
            return str(await (await self.pool()).execute(sql, *params.values))
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(str(exc)) from None

    async def active_run(self, thread_id: str) -> str | None:
        return typing_cast("str | None", await (await self.pool()).fetchval(ACTIVE, thread_id))

    async def page(self, table: Table, where: dict[str, Any], params: PageParams) -> tuple[list[Any], bool]:
        pool = await self.pool()
        args = list(where.values())
        matching = " AND ".join(f"{quoted(k)} = ${i}" for i, k in enumerate(where, 1))
        for cursor, name in ((params.after, "after"), (params.before, "before")):
            if cursor is None:
                continue
            sql = f"SELECT seq FROM {table.name} WHERE id = ${len(args) + 1} AND {matching}"
            at = await pool.fetchval(sql, *args, cursor)
            if at is None:
                raise BadCursor(name, cursor)
            args.append(at)
            matching += f" AND seq {'>' if after_cursor(params, name) else '<'} ${len(args)}"
        args.append(params.limit + 1)
        order = "ASC" if listed_ascending(params) else "DESC"
        sql = f"SELECT {columns(table)} FROM {table.name} WHERE {matching} ORDER BY seq {order} LIMIT ${len(args)}"
        return turned(records(await pool.fetch(sql, *args)), params)

    async def claim_run(
        self, run_id: str, owner: str, lease_until: float, t: float, chars: Chars
    ) -> tuple[Claimed | None, RunRow | None]:
        # no transaction (its BEGIN and COMMIT would double the round trips of every run's claim):
        # a claim whose reads fail stays in_progress until its lease lapses and the sweeper re-queues it
        async with (await self.pool()).acquire() as conn:
            run = _run(await conn.fetchrow(CLAIM, run_id, owner, lease_until, t))
            if run is None:
                # a run cancelled while queued is finished off by whoever receives its id
                return None, _run(await conn.fetchrow(CANCEL_QUEUED, run_id, t))
            # usage is set once a round has been recorded: only then are there steps to replay
            return await _reads(conn, run, chars, steps=bool(run.usage)), None

    async def reload_run(self, run_id: str, owner: str, chars: Chars) -> Claimed | None:
        async with (await self.pool()).acquire() as conn:
            run = _run(await conn.fetchrow(RELOAD, run_id, owner))
            return None if run is None else await _reads(conn, run, chars, steps=True)

    async def finish(
        self, table: Table, row_id: str, owner: str, values: dict[str, Any], inserts: Inserts
    ) -> bool:
        params = Params(row_id, owner)
        parts = [f"r AS ({_held(table, values, params, 'in_progress')} RETURNING id)"]
        parts += [
            f"i{i} AS ({insert_rows(target, [row], params, source='r')})"
            for i, (target, row) in enumerate(inserts)
        ]
        sql = "WITH " + ", ".join(parts) + " SELECT count(*) FROM r"
        return bool(await (await self.pool()).fetchval(sql, *params.values))

    async def stop(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> Record | None:
        params = Params(row_id, owner)
        sql = f"{_held(table, values, params, 'cancelling')} RETURNING {columns(table)}"
        return record(await (await self.pool()).fetchrow(sql, *params.values))

    async def release(self, table: Table, row_id: str, owner: str, values: dict[str, Any]) -> bool:
        params = Params(row_id, owner)
        sql = f"{_held(table, values, params, 'in_progress')} RETURNING id"
        return await (await self.pool()).fetchval(sql, *params.values) is not None

    async def claim_response(
        self, response_id: str, owner: str, lease_until: float, t: float
    ) -> ClaimedResponse | None:
        async with (await self.pool()).acquire() as conn:  # no transaction, as for runs
            found = await conn.fetchrow(CLAIM_RESPONSE, response_id, owner, lease_until, t)
            if found is None:
                return None
            fields = dict(found)
            own: list[Any] | None = fields.pop("own_items")
            row = typing_cast("ResponseRow", Record(fields))
            if own is not None:
                return ClaimedResponse(row, own)
            if row.conversation_id is not None:
                items = await conn.fetch(CONVERSATION_ITEMS, row.conversation_id, row.id)
            else:
                items = await conn.fetch(CHAIN_ITEMS, row.previous_response_id, row.project, row.id)
        return ClaimedResponse(row, [r["data"] for r in items])

    async def finish_response(
        self,
        response_id: str,
        owner: str,
        values: dict[str, Any],
        outputs: list[dict[str, Any]],
        conversation_id: str | None,
    ) -> bool:
        params = Params(response_id, owner)
        parts = [f"r AS ({_held(RESPONSES, values, params, 'in_progress')} RETURNING id)"]
        if outputs:
            rows = [o | {"conversation_id": conversation_id} for o in outputs]
            parts.append(f"i AS ({insert_rows(ITEMS, rows, params, source='r')})")
        if conversation_id is not None:  # the input items (a CTE does not see the rows `i` writes)
            parts.append(
                f"u AS (UPDATE items SET conversation_id = {params.add(conversation_id)} "
                "WHERE response_id = $1 AND EXISTS (SELECT 1 FROM r))"
            )
        sql = "WITH " + ", ".join(parts) + " SELECT count(*) FROM r"
        return bool(await (await self.pool()).fetchval(sql, *params.values))

    async def cancel_response(self, response_id: str, t: float) -> ResponseRow | None:
        found = await (await self.pool()).fetchrow(CANCEL_RESPONSE, response_id)
        return typing_cast("ResponseRow | None", record(found))

    async def forget_response(self, response_id: str) -> None:
        async with (await self.pool()).acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM items WHERE response_id = $1 AND conversation_id IS NULL", response_id
            )
            await conn.execute("DELETE FROM responses WHERE id = $1", response_id)


def _held(table: Table, values: dict[str, Any], params: Params, status: str) -> str:
    """UPDATE of the row `$1` only while `$2` holds it in `status`."""
    sets = ", ".join(f"{quoted(k)} = {params.add(v)}" for k, v in values.items())
    return f"UPDATE {table.name} SET {sets} WHERE id = $1 AND owner = $2 AND status = '{status}'"


def _run(row: asyncpg.Record | None) -> RunRow | None:
    return typing_cast("RunRow | None", record(row))


async def _reads(conn: asyncpg.Connection, run: RunRow, chars: Chars, steps: bool) -> Claimed:
    thread = records(await conn.fetch(THREAD, run.thread_id, chars(run)))
    rounds = records(await conn.fetch(ROUNDS, run.id)) if steps else []
    return Claimed(run, typing_cast("list[MessageRow]", thread), typing_cast("list[StepRow]", rounds))


async def _reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset is a round trip on every release (UNLISTEN, RESET ALL, ...) for
    session state these statements never set; only an interrupted transaction needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _codecs(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
