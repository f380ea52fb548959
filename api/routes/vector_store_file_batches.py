"""Vector store file batches: create, retrieve (polled), cancel, list their files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import update
from sqlmodel import col

from api.deps import Project, Session
from api.errors import BadRequest, NotFound
from api.pagination import page
from api.responses import run_response
from api.routes.vector_store_files import FileListing, status_filter
from api.vector_store_rows import attach, send, store_of, usable
from api.vector_store_schemas import FileBatchCreate
from core.models import FILE_BATCHES, VECTOR_STORE_FILES, VectorStoreFile, VectorStoreFileBatch
from retrieval.catalog import lock_store, recount

router = APIRouter(prefix="/{vector_store_id}/file_batches", tags=["vector_stores"])


async def batch_of(session: Session, store_id: str, batch_id: str, project: str) -> VectorStoreFileBatch:
    row = await session.get(VectorStoreFileBatch, batch_id, populate_existing=True)
    if row is None or row.project != project or row.vector_store_id != store_id:
        raise NotFound.of("vector store file batch", batch_id)
    return row


@router.post("")
async def create_file_batch(
    request: Request, vector_store_id: str, body: FileBatchCreate, project: Project, session: Session
) -> Response:
    """Attach several files at once; each is ingested in the background."""
    if (body.file_ids is None) == (body.files is None):
        raise BadRequest("Give exactly one of 'file_ids' and 'files'.", param="file_ids")
    store = usable(await store_of(session, vector_store_id, project))
    batch = VectorStoreFileBatch(project=project, vector_store_id=vector_store_id)
    session.add(batch)
    await session.flush()
    pending = await attach(session, project, store, body.items(), batch.id)
    await session.commit()
    await send(pending)
    batch = await batch_of(session, vector_store_id, batch.id, project)
    return run_response(batch.to_openai(), request.app.state.settings.poll_after_ms)


@router.get("/{batch_id}")
async def retrieve_file_batch(
    request: Request, vector_store_id: str, batch_id: str, project: Project, session: Session
) -> Response:
    """Retrieve a file batch (polled until its files are processed)."""
    batch = await batch_of(session, vector_store_id, batch_id, project)
    return run_response(batch.to_openai(), request.app.state.settings.poll_after_ms)


@router.post("/{batch_id}/cancel")
async def cancel_file_batch(
    request: Request, vector_store_id: str, batch_id: str, project: Project, session: Session
) -> Response:
    """Cancel a batch: its files not yet processed become cancelled."""
    batch = await batch_of(session, vector_store_id, batch_id, project)
    conn = await session.connection()
    await lock_store(conn, vector_store_id)
    vsf = VECTOR_STORE_FILES.c
    await conn.execute(
        update(VECTOR_STORE_FILES)
        .where(vsf.batch_id == batch_id, vsf.status == "in_progress")
        .values(status="cancelled", owner=None, lease_until=None)
    )
    if batch.status == "in_progress":
        await conn.execute(
            update(FILE_BATCHES).where(FILE_BATCHES.c.id == batch_id).values(status="cancelled")
        )
    await recount(conn, vector_store_id, [batch_id])
    await session.commit()
    batch = await batch_of(session, vector_store_id, batch_id, project)
    return run_response(batch.to_openai(), request.app.state.settings.poll_after_ms)


@router.get("/{batch_id}/files")
async def list_file_batch_files(
    vector_store_id: str, batch_id: str, params: FileListing, project: Project, session: Session
) -> Response:
    """List the files of a batch, optionally of one status."""
    await batch_of(session, vector_store_id, batch_id, project)
    where = [
        col(VectorStoreFile.vector_store_id) == vector_store_id,
        col(VectorStoreFile.batch_id) == batch_id,
        *status_filter(params),
    ]
    return await page(session, VectorStoreFile, params, *where)
