"""Containers: create (with copies of Files), list, retrieve, delete.

A container's code runs in a sandbox session the workers keep under its id; these routes keep
the rows and the bytes. Its files have a router of their own, included here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete
from sqlmodel import col, select

from api.container_rows import container_of, delete_bytes, files_of, new_bytes, path_of
from api.container_schemas import ContainerCreate, ContainerListParams, check_memory
from api.deps import Project, Session
from api.item_rows import Wired
from api.pagination import page_rows
from api.params import Checked
from api.responses import deleted, listing
from api.routes import container_files
from core.containers import (
    CONTAINER_FILES,
    CONTAINERS,
    DEFAULT_MINUTES,
    Container,
    ContainerFile,
    copy_bytes,
    wire_container,
)

router = APIRouter(prefix="/containers", tags=["containers"], dependencies=[Checked])
router.include_router(container_files.router)


@router.post("")
async def create_container(
    request: Request, body: ContainerCreate, project: Project, session: Session
) -> Response:
    """Create a container; its file_ids are copied in (later changes to those Files do not reach it)."""
    check_memory(body.memory_limit, request.app.state.settings.container_max_memory, "memory_limit")
    file_ids = list(dict.fromkeys(body.file_ids or []))
    sources = await files_of(session, project, file_ids)
    row = Container(
        project=project,
        name=body.name,
        expires_minutes=body.expires_after.minutes if body.expires_after else DEFAULT_MINUTES,
        memory_limit=body.memory_limit,
        file_ids=file_ids or None,
    )
    # a path holds one file: of Files with the same name, the last one listed is the one kept
    at = {path_of(f.filename, f"file_ids[{i}]"): f for i, f in enumerate(sources)}
    copies = [
        ContainerFile(container_id=row.id, project=project, path=path, source="user", file_id=f.id)
        for path, f in at.items()
    ]
    storage, limit = request.app.state.storage, request.app.state.settings.max_file_bytes
    async with new_bytes(storage) as keys:
        for source, copy in zip(at.values(), copies):
            keys.append(copy.id)
            copy.bytes = await run_in_threadpool(copy_bytes, storage, source.id, copy.id, limit)
        session.add(row)
        session.add_all(copies)
        await session.commit()
    return JSONResponse(wire_container(row))


@router.get("")
async def list_containers(
    params: Annotated[ContainerListParams, Query()], project: Project, session: Session
) -> Response:
    """List containers, optionally those of one name."""
    where = [col(Container.project) == project]
    if params.name is not None:
        where.append(col(Container.name) == params.name)
    rows, has_more = await page_rows(session, Container, params, *where)
    return listing([Wired(r.id, wire_container(r)) for r in rows], has_more)


@router.get("/{container_id}")
async def retrieve_container(container_id: str, project: Project, session: Session) -> Response:
    """Retrieve a container (an expired one too: its status says so)."""
    return JSONResponse(wire_container(await container_of(session, container_id, project)))


@router.delete("/{container_id}")
async def delete_container(
    request: Request, container_id: str, project: Project, session: Session
) -> Response:
    """Delete a container, its files' rows and their bytes."""
    await container_of(session, container_id, project)
    query = select(col(ContainerFile.id)).where(col(ContainerFile.container_id) == container_id)
    keys = list((await session.exec(query)).all())
    conn = await session.connection()
    await conn.execute(delete(CONTAINER_FILES).where(CONTAINER_FILES.c.container_id == container_id))
    await conn.execute(delete(CONTAINERS).where(CONTAINERS.c.id == container_id))
    await session.commit()
    await run_in_threadpool(delete_bytes, request.app.state.storage, keys)
    return deleted(container_id, "container")
