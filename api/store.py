"""Row helpers the routers share: ownership lookups and building rows from request bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, overload

from pydantic import BaseModel
from sqlalchemy import Row, Table
from sqlalchemy import insert as sql_insert
from sqlalchemy import select as sql_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.body import Body
from api.errors import NotFound
from api.schemas import MessageCreate, RunToolResources, ThreadCreate, ToolResources
from core.containers import CONTAINERS
from core.models import ACTIVE_RUN_STATUSES, FILES, VECTOR_STORES, Run, new_row, table_of
from core.store import RunStore


class Owned(Protocol):
    """A row that belongs to a project."""

    project: str


T = TypeVar("T", bound=Owned)

KIND = {
    "Assistant": "assistant",
    "Thread": "thread",
    "Message": "message",
    "Run": "run",
    "RunStep": "run step",
    "File": "file",
}


async def owned(session: AsyncSession, table: type[T], object_id: str, project: str, **match: str) -> T:
    """The row with this id in the caller's project (and matching parents), or 404."""
    row = await session.get(table, object_id)
    if row is None or row.project != project or any(getattr(row, k) != v for k, v in match.items()):
        raise NotFound.of(KIND[table.__name__], object_id)
    return row


async def owned_row(session: AsyncSession, table: type[SQLModel], object_id: str, project: str) -> Row[Any]:
    """`owned` for read-only use on a hot path: the row's columns (a Core row), or 404."""
    t = table_of(table)
    query = sql_select(t).where(t.c.id == object_id, t.c.project == project)
    row = (await (await session.connection()).execute(query)).first()
    if row is None:
        raise NotFound.of(KIND[table.__name__], object_id)
    return row


REFERENCED = {"file": FILES, "vector store": VECTOR_STORES, "container": CONTAINERS}


async def check_refs(db: AsyncSession | RunStore, project: str, body: Body) -> None:
    """Every file and vector store the body names is in the caller's project, or 404 in OpenAI's
    words before anything is written (a run would otherwise carry ids its tools can never read)."""
    refs = body.references()
    found: set[tuple[str, str]] = set()
    for kind, table in REFERENCED.items():
        ids = list(dict.fromkeys(i for k, i in refs if k == kind))
        if ids:
            found |= {(kind, i) for i in await owned_ids(db, table, ids, project)}
    for kind, object_id in refs:
        if (kind, object_id) not in found:
            raise NotFound.of(kind, object_id)


async def owned_ids(db: AsyncSession | RunStore, table: Table, ids: list[str], project: str) -> set[str]:
    if not isinstance(db, AsyncSession):  # the run store's path of POST /threads/runs
        return await db.owned_ids(table, ids, project)
    query = select(table.c.id).where(table.c.id.in_(ids), table.c.project == project)
    return set(await db.exec(query))


def message_row(project: str, thread_id: str, body: MessageCreate) -> dict[str, Any]:
    """Column values of a message written by the caller (not by a run)."""
    return new_row(
        "msg",
        project=project,
        thread_id=thread_id,
        role=body.role,
        content=body.stored_content(),
        attachments=[a.model_dump(exclude_none=True) for a in body.attachments or []],
        meta=body.metadata,
        assistant_id=None,
        run_id=None,
        status="completed",
        completed_at=None,
        incomplete_at=None,
        incomplete_details=None,
    )


async def insert(session: AsyncSession, table: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """Insert column values with a Core statement: no ORM objects to build and flush."""
    if rows:
        await session.exec(sql_insert(table_of(table)), params=rows)


def resources(value: ToolResources | RunToolResources | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(exclude_none=True)


@overload
def dumped(items: Sequence[BaseModel]) -> list[dict[str, Any]]: ...


@overload
def dumped(items: None) -> None: ...


def dumped(items: Sequence[BaseModel] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [i.model_dump(exclude_none=True, by_alias=True) for i in items]


def dumped_one(item: Any) -> Any:
    return item.model_dump(exclude_none=True, by_alias=True) if hasattr(item, "model_dump") else item


async def active_run(session: AsyncSession, thread_id: str) -> str | None:
    """The id of the thread's queued, running or waiting run, if it has one."""
    query = select(col(Run.id)).where(
        col(Run.thread_id) == thread_id, col(Run.status).in_(ACTIVE_RUN_STATUSES)
    )
    return (await session.exec(query)).first()


def thread_rows(project: str, body: ThreadCreate | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Column values of a new thread and of its initial messages, in order."""
    body = body or ThreadCreate()
    thread = new_row(
        "thread", project=project, meta=body.metadata, tool_resources=resources(body.tool_resources)
    )
    return thread, [message_row(project, thread["id"], m) for m in body.messages or []]
