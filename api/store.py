"""Row helpers the routers share: ownership lookups and building rows from request bodies."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import NotFound
from api.schemas import MessageCreate, ThreadCreate, ToolResources
from core.models import ACTIVE_RUN_STATUSES, Message, Run, Thread

T = TypeVar("T", bound=SQLModel)

KIND = {"Assistant": "assistant", "Thread": "thread", "Message": "message", "Run": "run", "RunStep": "run step",
        "File": "file"}


async def owned(session: AsyncSession, table: type[T], object_id: str, project: str, **match: str) -> T:
    """The row with this id in the caller's project (and matching parents), or 404."""
    row = await session.get(table, object_id)
    if row is None or row.project != project or any(getattr(row, k) != v for k, v in match.items()):  # type: ignore[attr-defined]
        raise NotFound.of(KIND[table.__name__], object_id)
    return row


def message_row(project: str, thread_id: str, body: MessageCreate, **extra: Any) -> Message:
    return Message(
        project=project,
        thread_id=thread_id,
        role=body.role,
        content=body.stored_content(),
        attachments=[a.model_dump(exclude_none=True) for a in body.attachments or []],
        meta=body.metadata,
        **extra,
    )


def resources(value: ToolResources | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(exclude_none=True)


def dumped(items: list[Any] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [i.model_dump(exclude_none=True, by_alias=True) for i in items]


def dumped_one(item: Any) -> Any:
    return item.model_dump(exclude_none=True, by_alias=True) if hasattr(item, "model_dump") else item


async def active_run(session: AsyncSession, thread_id: str) -> str | None:
    """The id of the thread's queued, running or waiting run, if it has one."""
    query = select(Run.id).where(Run.thread_id == thread_id, col(Run.status).in_(ACTIVE_RUN_STATUSES))
    return (await session.exec(query)).first()  # type: ignore[no-any-return]


def thread_rows(project: str, body: ThreadCreate | None) -> tuple[Thread, list[Message]]:
    """A new thread and its initial messages, in order."""
    body = body or ThreadCreate()
    thread = Thread(project=project, meta=body.metadata, tool_resources=resources(body.tool_resources))
    messages = [message_row(project, thread.id, m) for m in body.messages or []]
    return thread, messages
