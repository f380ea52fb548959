"""Hot-path statements straight on asyncpg, when the database is PostgreSQL.

Through SQLAlchemy a statement costs about as much CPU in its execution layer as in the
driver, and a transaction adds BEGIN and COMMIT round trips. The few writes every run makes
(its creation in the API, its claim and each round's end in the worker) go through here as
single statements instead: several rows are written atomically as data-modifying CTEs. Every
other query, and SQLite, keeps SQLAlchemy. Both write the same rows, but for one detail no
reader here depends on: a None in a JSON column is SQL NULL here and JSON null there.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

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


def with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the column defaults a SQLAlchemy insert would have filled in, in column order."""
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name in row:
            out[column.name] = row[column.name]
        elif column.default is not None:
            default = column.default
            out[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    return out


def insert_rows(table: Table, rows: list[dict[str, Any]], params: Params, source: str | None = None) -> str:
    """INSERT of `rows` (one shape) into `table`; `source` names a CTE the rows are written only
    if it returned a row (a guard)."""
    full = [with_defaults(table, r) for r in rows]
    names = ", ".join(quoted(k) for k in full[0])
    values = [", ".join(params.add(v, table, k) for k, v in r.items()) for r in full]
    if source is None:
        return f"INSERT INTO {table.name} ({names}) VALUES " + ", ".join(f"({v})" for v in values)
    return f"INSERT INTO {table.name} ({names}) " + " UNION ALL ".join(f"SELECT {v} FROM {source}" for v in values)


class Postgres:
    """A pool of asyncpg connections, opened on first use."""

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
        *first, last = parts
        sql = ("WITH " + ", ".join(f"i{i} AS ({p})" for i, p in enumerate(first)) + " " if first else "") + last
        await (await self.pool()).execute(sql, *params.values)


async def _reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset is a round trip on every release (UNLISTEN, RESET ALL, ...) for
    session state these statements never set; only an interrupted transaction needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _codecs(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
