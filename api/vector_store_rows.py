"""Vector store rows the routers share: lookups, attaching files (rows first, queue messages
after the commit) and detaching them. Used by the vector store routes and by threads,
messages and assistants (tool_resources, attachments)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import BadRequest, NotFound
from api.schemas import MessageCreate, ToolResources
from api.store import resources
from api.vector_store_schemas import BatchFile, ExpiresAfter, stored_chunking
from core.config import Settings
from core.ids import now, seq
from core.models import FILES, NO_FILES, VECTOR_STORE_FILES, VectorStore, VectorStoreFile
from retrieval.catalog import expiry, lock_store, recount, touch
from retrieval.embed import LOCAL_ALIASES
from retrieval.store import store_endpoint

log = logging.getLogger("assistd.api")
VSF = VECTOR_STORE_FILES.c
Pending = list[tuple[str, str]]  # (vector store id, file id) to send to the workers
# stores attached to lately -> whether they embed locally: `send` puts one file in a message for
# those (a worker holds the files of its messages: with the local model, each file takes a
# tenth of a second or more, so one per message keeps the workers' shares even)
_local: OrderedDict[str, bool] = OrderedDict()


async def store_of(session: AsyncSession, store_id: str, project: str) -> VectorStore:
    """The caller's vector store (its current row), or 404."""
    row = await session.get(VectorStore, store_id, populate_existing=True)
    if row is None or row.project != project:
        raise NotFound.of("vector store", store_id)
    return row


def usable(store: VectorStore) -> VectorStore:
    if store.status() == "expired":
        raise BadRequest(
            f"Vector store {store.id} has expired and can no longer be used.", param="vector_store_id"
        )
    return store


async def file_of(session: AsyncSession, store_id: str, file_id: str, project: str) -> VectorStoreFile:
    row = await session.get(VectorStoreFile, (store_id, file_id), populate_existing=True)
    if row is None or row.project != project:
        raise NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.")
    return row


def new_store(
    settings: Settings,
    project: str,
    name: str | None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_after: ExpiresAfter | None = None,
) -> VectorStore:
    """A store recording the embedding model (and endpoint) its vectors will come from."""
    model = settings.embeddings_model
    row = VectorStore(
        project=project,
        name=name or "",
        description=description,
        meta=metadata,
        expires_after=expires_after.model_dump() if expires_after else None,
        file_counts=NO_FILES,
        embedding_model=model,
        embedding_endpoint=None if model in LOCAL_ALIASES else store_endpoint(settings),
    )
    row.expires_at = expiry(row.expires_after, row.last_active_at)
    return row


async def check_files(session: AsyncSession, project: str, file_ids: list[str]) -> None:
    conn = await session.connection()
    query = select(FILES.c.id).where(FILES.c.id.in_(file_ids), FILES.c.project == project)
    found = set((await conn.execute(query)).scalars())
    for file_id in file_ids:
        if file_id not in found:
            raise NotFound.of("file", file_id)


async def attach(
    session: AsyncSession,
    project: str,
    store: VectorStore,
    items: list[BatchFile],
    batch_id: str | None = None,
) -> Pending:
    """Add (or re-add) files to a store as in_progress. The caller commits, then `send`s the result."""
    items = list({i.file_id: i for i in items}.values())
    if not items:
        return []
    ids = [i.file_id for i in items]
    await check_files(session, project, ids)
    conn = await session.connection()
    await lock_store(conn, store.id)
    old = {
        r.id: r.batch_id
        for r in (
            await conn.execute(
                select(VSF.id, VSF.batch_id).where(VSF.vector_store_id == store.id, VSF.id.in_(ids))
            )
        ).all()
    }
    t = now()
    fresh = {
        "status": "in_progress",
        "last_error": None,
        "batch_id": batch_id,
        "enqueued_at": t,
        "owner": None,
        "lease_until": None,
        "attempts": 0,
    }
    new: list[dict[str, Any]] = []
    for item in items:
        values = fresh | {
            "attributes": item.attributes,
            "chunking_strategy": stored_chunking(item.chunking_strategy),
        }
        if item.file_id in old:
            await conn.execute(
                update(VECTOR_STORE_FILES)
                .where(VSF.vector_store_id == store.id, VSF.id == item.file_id)
                .values(**values)
            )
        else:
            new.append(
                values
                | {
                    "vector_store_id": store.id,
                    "id": item.file_id,
                    "project": project,
                    "seq": seq(),
                    "created_at": t,
                    "usage_bytes": 0,
                    "content_key": None,
                }
            )
    if new:  # one statement for a batch's new files, not a round trip each
        await conn.execute(insert(VECTOR_STORE_FILES), new)
    await recount(conn, store.id, [batch_id, *old.values()])
    await touch(conn, store, force=True)
    _local[store.id] = store.embedding_model in LOCAL_ALIASES
    _local.move_to_end(store.id)
    while len(_local) > 4096:
        _local.popitem(last=False)
    return [(store.id, i) for i in ids]


async def send(pending: Pending) -> None:
    """Hand committed files to the workers. A lost message is re-sent by the workers' sweeper."""
    if not pending:
        return
    from core.ingest_queue import by_store, enqueue_ingest_files

    def go() -> None:
        try:
            for store_id, file_ids in by_store(pending).items():
                enqueue_ingest_files(
                    store_id, file_ids, per_message=1 if _local.get(store_id, True) else None
                )
        except Exception:
            log.warning("could not enqueue ingestion; the sweeper will re-send it", exc_info=True)

    await run_in_threadpool(go)


THREAD_STORE_EXPIRY = ExpiresAfter(anchor="last_active_at", days=7)  # OpenAI's default for thread helpers


async def resolve_resources(
    session: AsyncSession, settings: Settings, project: str, value: ToolResources | None, *, for_thread: bool
) -> tuple[dict[str, Any] | None, Pending]:
    """tool_resources as stored: each `file_search.vector_stores` helper becomes a new store listed in
    `vector_store_ids` (the caller commits, then `send`s); listed stores must exist."""
    stored = resources(value)
    if value is None or value.file_search is None:
        return stored, []
    ids = list(value.file_search.vector_store_ids or [])
    pending: Pending = []
    for spec in value.file_search.vector_stores or []:
        store = new_store(
            settings,
            project,
            None,
            metadata=spec.metadata,
            expires_after=THREAD_STORE_EXPIRY if for_thread else None,
        )
        session.add(store)
        await session.flush()
        items = [BatchFile(file_id=f, chunking_strategy=spec.chunking_strategy) for f in spec.file_ids or []]
        pending += await attach(session, project, store, items)
        ids.append(store.id)
    if len(ids) > 1:
        raise BadRequest(
            "At most one vector store can be attached for file_search.",
            param="tool_resources.file_search.vector_store_ids",
        )
    for store_id in ids:
        await store_of(session, store_id, project)
    assert stored is not None
    stored["file_search"] = {"vector_store_ids": ids}
    return stored, pending


def file_search_attachments(messages: list[MessageCreate]) -> list[str]:
    """The files messages attach for the file_search tool."""
    return list(
        dict.fromkeys(
            a.file_id
            for m in messages
            for a in m.attachments or []
            if any(t.type == "file_search" for t in a.tools or [])
        )
    )


async def attach_to_thread(
    session: AsyncSession,
    settings: Settings,
    project: str,
    tool_resources: dict[str, Any] | None,
    file_ids: list[str],
) -> tuple[dict[str, Any] | None, Pending]:
    """Files attached to a thread's messages for file_search go into the thread's vector store,
    created (expiring 7 days after its last activity) when the thread has none; the new tool_resources."""
    if not file_ids:
        return tool_resources, []
    out = dict(tool_resources or {})
    ids = list((out.get("file_search") or {}).get("vector_store_ids") or [])
    if ids:
        store = await store_of(session, ids[0], project)
    else:
        store = new_store(settings, project, None, expires_after=THREAD_STORE_EXPIRY)
        session.add(store)
        await session.flush()
        out["file_search"] = {"vector_store_ids": [store.id]}
    return out, await attach(session, project, usable(store), [BatchFile(file_id=f) for f in file_ids])


async def thread_resources(
    session: AsyncSession,
    settings: Settings,
    project: str,
    value: ToolResources | None,
    messages: list[MessageCreate],
) -> tuple[dict[str, Any] | None, Pending]:
    """A new thread's tool_resources: its helpers resolved, its messages' file_search attachments added."""
    stored, pending = await resolve_resources(session, settings, project, value, for_thread=True)
    stored, more = await attach_to_thread(
        session, settings, project, stored, file_search_attachments(messages)
    )
    return stored, pending + more
