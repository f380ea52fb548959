"""The run store: the writes and reads of a run's life, behind one interface with two backends.

    RunStore (store/base.py: the interface; this module: `open_store`, which picks a backend)
    ├── SqlStore (store/sql.py): SQLAlchemy Core on SQLite, on the loop's thread (store/inline.py)
    └── PgStore (store/pg.py): asyncpg; PostgreSQL, where these statements are every run's hot path

The API creates runs through it, the run loop claims, reloads and ends them through it, and
neither asks which database it is on. Both backends write the same rows (but for one detail no
reader depends on: on PgStore a None in a JSON column is SQL NULL, JSON null on SqlStore).

The lifecycle writes (`finish`, `stop`, `release`) take the table: a row with `status`, `owner`
and `lease_until`, claimed by one worker at a time: runs and responses. Each has its own claim
and reads (`claim_run` / `reload_run`, `claim_response`) and responses their own end
(`finish_response`, which also adds the items to the response's conversation).

One difference is deliberate: PgStore's claim and the reads after it are separate statements
(a transaction's BEGIN and COMMIT would double a claim's round trips), so a claim whose reads
fail is left in_progress until its lease lapses; SqlStore's is one transaction.

Everything else (housekeeping's sweeps, the tools' reads, the API's other routes) stays on
SQLAlchemy for both databases: those paths are not hot enough to be written twice.
"""

from __future__ import annotations

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


def open_store(url: str, size: int, pooler: str = "none") -> RunStore:
    """PgStore (its own pool of `size` connections) on PostgreSQL, else SqlStore (SQLite, on
    the event loop's thread); `pooler` is database_pooler."""
    if is_sqlite(url):
        from core.store.inline import InlineEngine
        from core.store.sql import SqlStore

        return SqlStore(InlineEngine.open(url))
    from core.store.pg import PgStore

    return PgStore(url, size, pooler)
