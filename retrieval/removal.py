"""Deleting a file or a vector store with its vector store rows and chunks: the DELETE routes
(api/routes/files.py, vector_stores.py) and the workers' retention (workers/retention.py) share
these.

As in core/removal.py, `guards` are extra conditions on the object's own row, checked in the
statement that takes it. The caller owns the transaction; a file's bytes are the caller's to
delete once it has committed (bytes gone before the commit would leave a row without them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import FILE_BATCHES, FILES, VECTOR_STORE_FILES, VECTOR_STORES
from retrieval.catalog import detach, drop_unused_chunks

VS, VSF = VECTOR_STORES.c, VECTOR_STORE_FILES.c


async def remove_file(conn: AsyncConnection, file_id: str, *guards: Any) -> bool:
    """The file's row, and the file in every vector store holding it; False if no row matched."""
    gone = await conn.execute(delete(FILES).where(FILES.c.id == file_id, *guards))
    if not gone.rowcount:
        return False
    stores = (await conn.execute(select(VSF.vector_store_id).where(VSF.id == file_id))).scalars().all()
    for store_id in sorted(stores):  # one order for every writer: no two of them deadlock
        await detach(conn, store_id, [file_id])
    return True


async def remove_vector_store(conn: AsyncConnection, store_id: str, *guards: Any) -> bool:
    """The store with its file links, batches and the chunks nothing else uses (the files stay)."""
    # retrieval.catalog.lock_store, guarded: the store's row lock first, as every writer takes it
    locked = await conn.execute(
        update(VECTOR_STORES).where(VS.id == store_id, *guards).values(version=VS.version + 1)
    )
    if not locked.rowcount:
        return False
    keys = (
        await conn.execute(
            delete(VECTOR_STORE_FILES).where(VSF.vector_store_id == store_id).returning(VSF.content_key)
        )
    ).scalars()
    await drop_unused_chunks(conn, list(keys))
    await conn.execute(delete(FILE_BATCHES).where(FILE_BATCHES.c.vector_store_id == store_id))
    await conn.execute(delete(VECTOR_STORES).where(VS.id == store_id))
    return True
