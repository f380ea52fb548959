"""Row factories: each stores one row with sensible defaults and returns it; keywords override columns.

`db` is an AsyncEngine (the rows are committed in a transaction of their own) or an AsyncSession
(they are added and flushed: the caller's transaction commits them).

    assistant = await rows.assistant(engine, model="echo")
    thread = await rows.thread(engine, messages=["hi", "and again"])
    run = await rows.run(engine, status="in_progress")  # with a new assistant and thread of its own
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import sessionmaker
from core.ids import now
from core.models import NO_FILES, Assistant, File, Message, Run, Thread, VectorStore, VectorStoreFile

PROJECT = "p"
MODEL = "echo"

Db = AsyncEngine | AsyncSession


async def insert(db: Db, *objects: SQLModel) -> None:
    """Store `objects` together."""
    if isinstance(db, AsyncSession):
        db.add_all(objects)
        await db.flush()
        return
    async with sessionmaker(db)() as session:
        session.add_all(objects)
        await session.commit()


def text(value: str) -> list[dict[str, Any]]:
    """A message's content: one text part."""
    return [{"type": "text", "text": {"value": value, "annotations": []}}]


async def assistant(db: Db, **values: Any) -> Assistant:
    row = Assistant(**{"project": PROJECT, "model": MODEL} | values)
    await insert(db, row)
    return row


async def thread(db: Db, messages: Sequence[str] = (), **values: Any) -> Thread:
    """A thread holding `messages` from the user, oldest first."""
    row = Thread(**{"project": PROJECT} | values)
    await insert(db, row, *(user_message(row, value) for value in messages))
    return row


def user_message(of: Thread, value: str) -> Message:
    return Message(project=of.project, thread_id=of.id, role="user", content=text(value))


async def message(db: Db, thread_id: str, value: str = "hi", **values: Any) -> Message:
    row = Message(
        **{"project": PROJECT, "thread_id": thread_id, "role": "user", "content": text(value)} | values
    )
    await insert(db, row)
    return row


async def run(db: Db, thread_id: str | None = None, assistant_id: str | None = None, **values: Any) -> Run:
    """A queued run, just enqueued. Without `thread_id` it gets a thread of its own holding one user
    message ("hi"); without `assistant_id`, an assistant of its own."""
    project = values.get("project", PROJECT)
    extra: list[SQLModel] = []
    if assistant_id is None:
        owner = Assistant(project=project, model=values.get("model", MODEL))
        extra.append(owner)
        assistant_id = owner.id
    if thread_id is None:
        home = Thread(project=project)
        extra += [home, user_message(home, "hi")]
        thread_id = home.id
    row = Run(
        **{
            "project": PROJECT,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "model": MODEL,
            "enqueued_at": now(),
        }
        | values
    )
    await insert(db, *extra, row)
    return row


async def file(db: Db, **values: Any) -> File:
    """An uploaded file's row (the bytes are not stored)."""
    row = File(**{"project": PROJECT, "filename": "notes.txt", "purpose": "assistants", "bytes": 0} | values)
    await insert(db, row)
    return row


async def vector_store(db: Db, **values: Any) -> VectorStore:
    """An empty store of the local embedding model."""
    row = VectorStore(
        **{"project": PROJECT, "embedding_model": "local", "file_counts": dict(NO_FILES)} | values
    )
    await insert(db, row)
    return row


def vector_store_file(vector_store_id: str, file_id: str, **values: Any) -> VectorStoreFile:
    """A file attached to a store as just sent for ingestion (in_progress, unclaimed, enqueued
    now), not yet stored: `insert` several in one transaction."""
    return VectorStoreFile(
        **{"vector_store_id": vector_store_id, "id": file_id, "project": PROJECT, "enqueued_at": now()}
        | values
    )


async def vector_store_files(
    db: Db, vector_store_id: str, *file_ids: str, **values: Any
) -> list[VectorStoreFile]:
    """Files attached to a store, as just sent for ingestion."""
    made = [vector_store_file(vector_store_id, file_id, **values) for file_id in file_ids]
    await insert(db, *made)
    return made
