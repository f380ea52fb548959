"""Vector store files: attach, list (by status), retrieve, update attributes, detach, parsed content."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement, update
from sqlmodel import col, select

from api.deps import Project, Session
from api.pagination import ListParams, page
from api.responses import run_response, wire
from api.vector_store_rows import attach, file_of, send, store_of, usable
from api.vector_store_schemas import BatchFile, VectorStoreFileCreate, VectorStoreFileUpdate
from core.models import VECTOR_STORE_FILES, FileChunk, VectorStoreFile
from retrieval.catalog import detach, lock_store

router = APIRouter(prefix="/{vector_store_id}/files", tags=["vector_stores"])
Status = Literal["in_progress", "completed", "failed", "cancelled"]


class FileListParams(ListParams):
    filter: Status | None = None


FileListing = Annotated[FileListParams, Query()]


def status_filter(params: FileListParams) -> list[ColumnElement[bool]]:
    return [] if params.filter is None else [col(VectorStoreFile.status) == params.filter]


@router.post("")
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, project: Project, session: Session
) -> Response:
    """Attach a file to a vector store; it is ingested in the background."""
    store = usable(await store_of(session, vector_store_id, project))
    item = BatchFile(
        file_id=body.file_id, attributes=body.attributes, chunking_strategy=body.chunking_strategy
    )
    pending = await attach(session, project, store, [item])
    await session.commit()
    await send(pending)
    return wire((await file_of(session, vector_store_id, body.file_id, project)).to_openai())


@router.get("")
async def list_vector_store_files(
    vector_store_id: str, params: FileListing, project: Project, session: Session
) -> Response:
    """List a vector store's files, optionally of one status."""
    await store_of(session, vector_store_id, project)
    where = [col(VectorStoreFile.vector_store_id) == vector_store_id, *status_filter(params)]
    return await page(session, VectorStoreFile, params, *where)


@router.get("/{file_id}")
async def retrieve_vector_store_file(
    request: Request, vector_store_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """Retrieve a vector store file (polled until it is processed)."""
    row = await file_of(session, vector_store_id, file_id, project)
    return run_response(row.to_openai(), request.app.state.settings.poll_after_ms)


@router.post("/{file_id}")
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: VectorStoreFileUpdate, project: Project, session: Session
) -> Response:
    """Replace a vector store file's attributes (what search filters see)."""
    await file_of(session, vector_store_id, file_id, project)
    conn = await session.connection()
    await lock_store(conn, vector_store_id)  # cached search indexes hold the attributes
    vsf = VECTOR_STORE_FILES.c
    await conn.execute(
        update(VECTOR_STORE_FILES)
        .where(vsf.vector_store_id == vector_store_id, vsf.id == file_id)
        .values(attributes=body.attributes)
    )
    await session.commit()
    return wire((await file_of(session, vector_store_id, file_id, project)).to_openai())


@router.delete("/{file_id}")
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """Remove a file from a vector store (the file itself is not deleted)."""
    await file_of(session, vector_store_id, file_id, project)
    await detach(await session.connection(), vector_store_id, [file_id])
    await session.commit()
    return JSONResponse({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})


@router.get("/{file_id}/content")
async def vector_store_file_content(
    vector_store_id: str, file_id: str, project: Project, session: Session
) -> Response:
    """The file's parsed text, as the chunks it was split into."""
    row = await file_of(session, vector_store_id, file_id, project)
    texts: Sequence[str] = (
        []
        if row.content_key is None or row.status != "completed"
        else (
            await session.exec(
                select(col(FileChunk.text))
                .where(col(FileChunk.content_key) == row.content_key)
                .order_by(col(FileChunk.position))
            )
        ).all()
    )
    data = [{"type": "text", "text": t} for t in texts]
    return JSONResponse(
        {"object": "vector_store.file_content.page", "data": data, "has_more": False, "next_page": None}
    )
