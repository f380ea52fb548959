"""Database engines (async for the service, sync for migrations) and the migration check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import create_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotMigrated as NotMigrated  # re-exported: callers import it from here too

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


# Through a pooler in transaction mode each transaction may run on another server connection: a
# statement prepared by name in one is missing in the next, or is another client's of the same
# name. So asyncpg caches no statement and prepares each one unnamed right before running it
# (Parse and Bind reach the same server connection: asyncpg sends no Sync between them).
ASYNCPG_UNPREPARED: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's own cache (its queries for types and codecs)
    "prepared_statement_cache_size": 0,  # SQLAlchemy's, per connection
    "prepared_statement_name_func": lambda: "",  # "": the unnamed statement
}


def _driver_url(url: str, *, sync: bool) -> str:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        u = u.set(drivername="sqlite" if sync else "sqlite+aiosqlite")
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    elif backend == "postgresql":
        u = u.set(drivername="postgresql+psycopg" if sync else "postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    """The connect listener of a SQLite engine. WAL lets the API read while the worker writes;
    busy_timeout waits instead of failing (0: the caller waits itself, core/store/inline.py)."""

    def on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


def sqlite_engine(url: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS, **options: Any) -> Engine:
    """A synchronous engine on a SQLite URL, with the pragmas every connection gets."""
    engine = create_engine(_driver_url(url, sync=True), **options)
    event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
    return engine


def async_engine(url: str, pool_size: int = 10, pooler: str = "none") -> AsyncEngine:
    """The service's engine: up to `pool_size` connections; `pooler` is database_pooler."""
    if is_sqlite(url):
        engine = create_async_engine(_driver_url(url, sync=False))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(BUSY_TIMEOUT_MS))
        return engine
    # No pre-ping: it would add a round trip to every transaction on the hot path; a connection
    # broken by a database restart is invalidated on first use and the pool reconnects.
    return create_async_engine(
        _driver_url(url, sync=False),
        pool_size=pool_size,
        # no overflow: a connection opened past pool_size is closed as soon as it is returned,
        # so bursts would pay a connection (and a PgBouncer login) per statement
        max_overflow=0,
        pool_recycle=1800,
        connect_args=ASYNCPG_UNPREPARED if pooler == "pgbouncer" else {},
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def sync_engine(url: str) -> Engine:
    """An engine for migrations and checks, never on a hot path."""
    if is_sqlite(url):
        return sqlite_engine(url)
    # psycopg prepares a statement it has run 5 times (a readiness check's SELECT 1): a named
    # statement that a pooler in transaction mode loses. These paths gain nothing from it.
    return create_engine(_driver_url(url, sync=True), connect_args={"prepare_threshold": None})


def _alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", _driver_url(url, sync=True).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Apply every migration (`alembic upgrade head`)."""
    from alembic import command

    os.environ.setdefault("ALEMBIC_QUIET", "1")
    command.upgrade(_alembic_config(url), "head")


def check_migrated(url: str) -> None:
    """Raise NotMigrated unless the database is at the newest revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(url)).get_current_head()
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if current != head:
        raise NotMigrated(
            f"database {make_url(url).render_as_string()} is at revision {current or 'none'}, "
            f"the code needs {head}: run `assistd migrate` first"
        )
