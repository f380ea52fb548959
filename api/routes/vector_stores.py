"""Vector stores: create (with files), list, retrieve, modify, delete, search.

Files and file batches have routers of their own, included here so the app adds one router.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from api.deps import Project, Session
from api.errors import BadRequest
from api.pagination import Listing, page
from api.params import Checked
from api.responses import deleted, wire
from api.routes import vector_store_file_batches, vector_store_files
from api.vector_store_rows import attach, new_store, send, store_of, usable
from api.vector_store_schemas import BatchFile, SearchRequest, VectorStoreCreate, VectorStoreUpdate
from core.models import VectorStore
from retrieval.catalog import expiry, stale, touch
from retrieval.filters import Predicate, parse
from retrieval.removal import remove_vector_store
from retrieval.store import search

router = APIRouter(prefix="/vector_stores", tags=["vector_stores"], dependencies=[Checked])
router.include_router(vector_store_files.router)
router.include_router(vector_store_file_batches.router)


@router.post("")
async def create_vector_store(
    request: Request, body: VectorStoreCreate, project: Project, session: Session
) -> Response:
    """Create a vector store, optionally with files."""
    row = new_store(
        request.app.state.settings, project, body.name, body.description, body.metadata, body.expires_after
    )
    session.add(row)
    await session.flush()
    items = [BatchFile(file_id=f, chunking_strategy=body.chunking_strategy) for f in body.file_ids or []]
    pending = await attach(session, project, row, items)
    await session.commit()
    await session.refresh(row)
    await send(pending)
    return wire(row.to_openai())


@router.get("")
async def list_vector_stores(params: Listing, project: Project, session: Session) -> Response:
    """List vector stores."""
    return await page(session, VectorStore, params, col(VectorStore.project) == project)


@router.get("/{vector_store_id}")
async def retrieve_vector_store(vector_store_id: str, project: Project, session: Session) -> Response:
    """Retrieve a vector store."""
    return wire((await store_of(session, vector_store_id, project)).to_openai())


@router.post("/{vector_store_id}")
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreUpdate, project: Project, session: Session
) -> Response:
    """Modify a vector store's name, metadata or expiration policy."""
    row = await store_of(session, vector_store_id, project)
    sent = body.model_fields_set
    if "name" in sent:
        row.name = body.name or ""
    if "metadata" in sent:
        row.meta = body.metadata
    if "expires_after" in sent:
        row.expires_after = body.expires_after.model_dump() if body.expires_after else None
        row.expires_at = expiry(row.expires_after, row.last_active_at)
    session.add(row)
    await session.commit()
    return wire(row.to_openai())


@router.delete("/{vector_store_id}")
async def delete_vector_store(vector_store_id: str, project: Project, session: Session) -> Response:
    """Delete a vector store with its file links and batches (the files themselves stay)."""
    await store_of(session, vector_store_id, project)
    await remove_vector_store(await session.connection(), vector_store_id)
    await session.commit()
    return deleted(vector_store_id, "vector_store")


def _predicate(filters: dict[str, Any] | None) -> Predicate | None:
    """The filters compiled; a FilterError (400) when they are malformed."""
    return None if filters is None else parse(filters)


def _check_queries(body: SearchRequest, limit: int) -> list[str]:
    """The queries, each at most `limit` characters (a search's cost grows with its query)."""
    queries = body.queries()
    for i, q in enumerate(queries):
        if len(q) > limit:
            param = "query" if isinstance(body.query, str) else f"query[{i}]"
            raise BadRequest(
                f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
                f"but got a string with length {len(q)} instead.",
                param=param,
                code="string_above_max_length",
            )
    return queries


@router.post("/{vector_store_id}/search")
async def search_vector_store(
    request: Request, vector_store_id: str, body: SearchRequest, project: Project, session: Session
) -> Response:
    """Search a vector store for the chunks most relevant to a query, filtered by file attributes."""
    queries = _check_queries(body, request.app.state.settings.search_query_max_chars)
    store = usable(await store_of(session, vector_store_id, project))
    predicate = _predicate(body.filters)
    threshold = (body.ranking_options.score_threshold if body.ranking_options else None) or 0.0
    engine = session.bind
    assert isinstance(
        engine, AsyncEngine
    )  # the app's sessions are bound to its engine (core.db.sessionmaker)
    hits = await search(
        engine, request.app.state.settings, [store], queries, body.max_num_results, predicate, threshold
    )
    if stale(store):  # a read-only search skips the write (and its commit) most of the time
        await touch(await session.connection(), store)
        await session.commit()
    data = [
        {
            "file_id": h.file_id,
            "filename": h.filename,
            "score": h.score,
            "attributes": h.attributes,
            "content": [{"type": "text", "text": h.text}],
        }
        for h in hits
    ]
    return JSONResponse(
        {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )
