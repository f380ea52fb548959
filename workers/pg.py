"""A run's claim and its end, straight on asyncpg, when the database is PostgreSQL.

Every run makes these two writes, with hundreds of runs in flight per worker. Through
SQLAlchemy they took half of the worker's CPU: its execution layer costs about as much per
statement as the driver itself, and each transaction adds BEGIN and COMMIT round trips. Here
the claim is one UPDATE (and the reads its prompt needs), and a round's end is one statement:
the guarded UPDATE and the rows it writes in data-modifying CTEs, all or nothing, in one
round trip. SQLite keeps the SQLAlchemy path in workers/runs.py; both write the same rows.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from core.models import RUNS

_DIALECT = postgresql.dialect()


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


def _rows(records: list[asyncpg.Record]) -> list[Record]:
    return [Record(dict(r)) for r in records]


def _q(name: str) -> str:
    return '"' + name + '"'


def _cast(table: Table, column: str) -> str:
    return table.c[column].type.compile(dialect=_DIALECT)


_RUN_COLUMNS = ", ".join(_q(c.name) for c in RUNS.columns)
CLAIM = (
    f"UPDATE runs SET status = 'in_progress', owner = $2, lease_until = $3, started_at = coalesce(started_at, $4), "
    f"attempts = attempts + 1 WHERE id = $1 AND status = 'queued' RETURNING {_RUN_COLUMNS}"
)
CANCEL_QUEUED = (
    f"UPDATE runs SET status = 'cancelled', cancelled_at = $2, expires_at = NULL "
    f"WHERE id = $1 AND status = 'cancelling' AND owner IS NULL RETURNING {_RUN_COLUMNS}"
)
THREAD = "SELECT id, role, content, run_id, attachments FROM messages WHERE thread_id = $1 ORDER BY seq"
ROUNDS = "SELECT type, step_details FROM run_steps WHERE run_id = $1 ORDER BY seq"


class Postgres:
    """A pool of asyncpg connections for the run path, opened on first use."""

    def __init__(self, url: str, size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # statements are prepared once per connection and reused (asyncpg's cache)
                    self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._size, init=_codecs,
                                                           reset=_reset)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def claim(self, run_id: str, owner: str, lease_until: float, t: float) -> tuple[Any, Any, list[Any], list[Any]]:
        """(run or None, the run cancelled while queued or None, its thread's messages, its steps)."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            row = await conn.fetchrow(CLAIM, run_id, owner, lease_until, t)
            if row is None:
                cancelled = await conn.fetchrow(CANCEL_QUEUED, run_id, t)
                return None, Record(dict(cancelled)) if cancelled else None, [], []
            run = Record(dict(row))
            thread = _rows(await conn.fetch(THREAD, run.thread_id))
            # usage is set once a round has been recorded: only then are there steps to replay
            steps = _rows(await conn.fetch(ROUNDS, run_id)) if run.usage else []
        return run, None, thread, steps

    async def finish(self, run_id: str, owner: str, values: dict[str, Any],
                     inserts: list[tuple[Table, dict[str, Any]]]) -> bool:
        """Set `values` on the run and insert `inserts`, only if `owner` holds it in_progress."""
        args: list[Any] = [run_id, owner]

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        sets = ", ".join(f"{_q(k)} = {param(v)}" for k, v in values.items())
        parts = [f"r AS (UPDATE runs SET {sets} WHERE id = $1 AND owner = $2 AND status = 'in_progress' RETURNING id)"]
        for i, (table, row) in enumerate(inserts):
            row = _with_defaults(table, row)
            columns = ", ".join(_q(k) for k in row)
            # INSERT ... SELECT infers no types from the target columns: cast each parameter
            selected = ", ".join(f"{param(v)}::{_cast(table, k)}" for k, v in row.items())
            parts.append(f"i{i} AS (INSERT INTO {table.name} ({columns}) SELECT {selected} FROM r)")
        sql = "WITH " + ", ".join(parts) + " SELECT count(*) FROM r"
        pool = await self.pool()
        return bool(await pool.fetchval(sql, *args))


def _with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the column defaults a SQLAlchemy insert would have filled in, in column order."""
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name in row:
            out[column.name] = row[column.name]
        elif column.default is not None:
            default = column.default
            out[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    return out


async def _reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset is a round trip on every release (UNLISTEN, RESET ALL, ...) for
    session state this path never sets; only an interrupted transaction needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _codecs(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

