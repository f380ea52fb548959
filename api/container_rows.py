"""Container rows the container routes share: lookups in the caller's project, the Files a
container is created with, and file bytes stored before their rows are committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import BadRequest, NotFound
from core.containers import CONTAINER_FILES, Container, ContainerFile, data_path, status_of
from core.models import File
from core.storage import Storage


async def container_of(session: AsyncSession, container_id: str, project: str) -> Container:
    """The caller's container (its current row), or 404: another project's is not there."""
    row = await session.get(Container, container_id, populate_existing=True)
    if row is None or row.project != project:
        raise NotFound.of("container", container_id)
    return row


def usable(row: Container) -> Container:
    """The container, or 400 once it has expired (its session is gone; its rows stay readable)."""
    if status_of(row) == "expired":
        raise BadRequest(f"Container {row.id} has expired and can no longer be used.", param="container_id")
    return row


async def file_of(session: AsyncSession, container_id: str, file_id: str, project: str) -> ContainerFile:
    row = await session.get(ContainerFile, file_id, populate_existing=True)
    if row is None or row.project != project or row.container_id != container_id:
        raise NotFound(f"No file found with id '{file_id}' in container '{container_id}'.")
    return row


async def files_of(session: AsyncSession, project: str, file_ids: list[str]) -> list[File]:
    """The caller's Files of these ids, in order; 404 for the first one missing, as other routes word it."""
    query = select(File).where(col(File.id).in_(file_ids), col(File.project) == project)
    found = {f.id: f for f in (await session.exec(query)).all()}
    for file_id in file_ids:
        if file_id not in found:
            raise NotFound.of("file", file_id)
    return [found[i] for i in file_ids]


def path_of(filename: str, param: str) -> str:
    """/mnt/data/<name>, or 400 for a name no file in the sandbox can have."""
    path = data_path(filename)
    if path is None:
        raise BadRequest(
            f"Invalid file name '{filename[:64]}': a container file needs a name of 1 to 255 bytes "
            "that is not '.' or '..'.",
            param=param,
            code="invalid_value",
        )
    return path


async def replace_at(session: AsyncSession, container_id: str, path: str) -> list[str]:
    """Remove the container's file at `path`, if it has one: a path holds one file, as in the
    sandbox (where the worker keeps the code's files the same way). The storage keys to delete
    once the caller has committed."""
    query = select(col(ContainerFile.id)).where(
        col(ContainerFile.container_id) == container_id, col(ContainerFile.path) == path
    )
    keys = list((await session.exec(query)).all())
    if keys:
        await session.exec(delete(CONTAINER_FILES).where(CONTAINER_FILES.c.id.in_(keys)))
    return keys


@asynccontextmanager
async def new_bytes(storage: Storage) -> AsyncIterator[list[str]]:
    """The storage keys the block fills (it appends each before writing it). Should the block
    fail, its rows were not committed and nothing will ever read those bytes: they are removed."""
    keys: list[str] = []
    try:
        yield keys
    except BaseException:
        await run_in_threadpool(delete_bytes, storage, keys)
        raise


def delete_bytes(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        storage.delete(key)
