"""Vector store bookkeeping shared by the API and the workers (SQLAlchemy Core on a connection).

Every transaction that changes a store's files starts with `lock_store` and ends with
`recount`: the store's row lock serialises writers (so counts are never computed from a stale
snapshot, and no two writers deadlock), and its `version` grows, which invalidates the search
indexes cached by (store id, version) in every process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.ids import now
from core.models import FILE_BATCHES, FILE_CHUNKS, NO_FILES, VECTOR_STORE_FILES, VECTOR_STORES

DAY = 86_400
ACTIVE_EVERY = 60.0  # last_active_at is written at most this often by searches

VS, VSF, BATCHES, CHUNKS = VECTOR_STORES.c, VECTOR_STORE_FILES.c, FILE_BATCHES.c, FILE_CHUNKS.c


async def lock_store(conn: AsyncConnection, store_id: str) -> None:
    """Take the store's row lock (before touching its files) and bump its version."""
    await conn.execute(update(VECTOR_STORES).where(VS.id == store_id).values(version=VS.version + 1))


def _counts(rows: Iterable[Any]) -> tuple[dict[str, int], int]:
    counts, usage = dict(NO_FILES), 0
    for status, n, used in rows:
        counts[status] = counts.get(status, 0) + int(n)
        counts["total"] += int(n)
        usage += int(used or 0)
    return counts, usage


async def recount(conn: AsyncConnection, store_id: str, batch_ids: Iterable[str | None] = ()) -> None:
    """Recompute the store's (and these batches') file counts and usage from its files."""
    by_status = select(VSF.status, func.count(), func.sum(VSF.usage_bytes)).group_by(VSF.status)
    counts, usage = _counts((await conn.execute(by_status.where(VSF.vector_store_id == store_id))).all())
    await conn.execute(
        update(VECTOR_STORES).where(VS.id == store_id).values(file_counts=counts, usage_bytes=usage)
    )
    for batch_id in {b for b in batch_ids if b}:
        counts, _ = _counts((await conn.execute(by_status.where(VSF.batch_id == batch_id))).all())
        done = "failed" if counts["total"] and counts["failed"] == counts["total"] else "completed"
        status = "in_progress" if counts["in_progress"] else done
        await conn.execute(
            update(FILE_BATCHES)
            .where(BATCHES.id == batch_id)
            # a cancelled batch stays cancelled whatever its files do next
            .values(
                file_counts=counts, status=case((BATCHES.status == "cancelled", "cancelled"), else_=status)
            )
        )


def expiry(expires_after: dict[str, Any] | None, last_active_at: float) -> float | None:
    return None if not expires_after else last_active_at + int(expires_after["days"]) * DAY


def stale(store: Any) -> bool:
    """Whether a search should write the store's `last_active_at` (at most once a minute)."""
    return bool(now() - store.last_active_at >= ACTIVE_EVERY)


async def touch(conn: AsyncConnection, store: Any, *, force: bool = False) -> None:
    """Mark the store active now (its `expires_at` follows); searches write at most once a minute."""
    t = now()
    if not force and not stale(store):
        return
    await conn.execute(
        update(VECTOR_STORES)
        .where(VS.id == store.id)
        .values(last_active_at=t, expires_at=expiry(store.expires_after, t))
    )


async def drop_unused_chunks(conn: AsyncConnection, keys: Iterable[str | None]) -> None:
    """Delete the chunks of content no vector store file refers to any more."""
    keys = sorted({k for k in keys if k})
    if keys:
        used = select(VSF.content_key).where(VSF.content_key.in_(keys))
        await conn.execute(
            delete(FILE_CHUNKS).where(CHUNKS.content_key.in_(keys), CHUNKS.content_key.not_in(used))
        )


async def detach(conn: AsyncConnection, store_id: str, file_ids: list[str]) -> None:
    """Remove files from a store (the files themselves stay), keeping counts and search true."""
    await lock_store(conn, store_id)
    gone = (
        await conn.execute(
            delete(VECTOR_STORE_FILES)
            .where(VSF.vector_store_id == store_id, VSF.id.in_(file_ids))
            .returning(VSF.batch_id, VSF.content_key)
        )
    ).all()
    await recount(conn, store_id, [g.batch_id for g in gone])
    await drop_unused_chunks(conn, [g.content_key for g in gone])
