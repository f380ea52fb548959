"""The run store: the writes and reads of a run's life, behind one interface with two backends.

    RunStore (store/base.py: the interface; this module: `open_store`, which picks a backend)
    ├── SqlStore (store/sql.py): SQLAlchemy Core; SQLite, and any database
    └── PgStore (store/pg.py): asyncpg; PostgreSQL, where these statements are every run's hot path

The API creates runs through it, the run loop claims, reloads and ends them through it, and
neither asks which database it is on. Both backends write the same rows (but for one detail no
reader depends on: on PgStore a None in a JSON column is SQL NULL, JSON null on SqlStore).

The lifecycle writes (`finish`, `stop`, `release`) take the table: a row with `status`, `owner`
and `lease_until`, claimed by one worker at a time. Runs are the first such table; responses
will be the next, with reads of their own beside `claim_run` and `reload_run`.

Everything else (housekeeping's sweeps, the tools' reads, the API's other routes) stays on
SQLAlchemy for both databases: those paths are not hot enough to be written twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import is_sqlite
from core.store.base import (
    Chars,
    Claimed,
    ClaimedResponse,
    Inserts,
    MessageRow,
    ResponseRow,
    RunRow,
    RunStore,
    StepRow,
)

__all__ = [
    "Chars",
    "Claimed",
    "ClaimedResponse",
    "Inserts",
    "MessageRow",
    "ResponseRow",
    "RunRow",
    "RunStore",
    "StepRow",
    "open_store",
]


def open_store(url: str, engine: AsyncEngine, size: int) -> RunStore:
    """PgStore (its own pool of `size` connections) on PostgreSQL, else SqlStore on `engine`."""
    if is_sqlite(url):
        from core.store.sql import SqlStore

        return SqlStore(engine)
    from core.store.pg import PgStore

    return PgStore(url, size)
