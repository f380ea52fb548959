"""Messages: create, retrieve, modify, delete, list (with a run_id filter)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Project, Session
from api.errors import BadRequest
from api.pagination import Listing, page
from api.params import Checked
from api.responses import deleted, wire
from api.schemas import MessageCreate, MessageUpdate
from api.store import active_run, check_refs, insert, message_row, owned
from api.vector_store_rows import attach_to_thread, file_search_attachments, send
from core.models import Message, Thread, wire_of

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"], dependencies=[Checked])


async def refuse_if_run_active(session: AsyncSession, thread_id: str) -> None:
    """OpenAI does not let messages be added while a run works on the thread."""
    active = await active_run(session, thread_id)
    if active:
        raise BadRequest(f"Can't add messages to {thread_id} while a run {active} is active.")


@router.post("")
async def create_message(
    request: Request, thread_id: str, body: MessageCreate, project: Project, session: Session
) -> Response:
    """Create a message."""
    thread = await owned(session, Thread, thread_id, project)
    await refuse_if_run_active(session, thread_id)
    await check_refs(session, project, body)
    row = message_row(project, thread_id, body)
    await insert(session, Message, [row])
    pending: list[tuple[str, str]] = []
    if searchable := file_search_attachments([body]):  # they go into the thread's vector store
        thread.tool_resources, pending = await attach_to_thread(
            session, request.app.state.settings, project, thread.tool_resources, searchable
        )
        session.add(thread)
    await session.commit()
    await send(pending)
    return wire(wire_of(Message, row))


@router.get("")
async def list_messages(
    thread_id: str, params: Listing, project: Project, session: Session, run_id: str | None = None
) -> Response:
    """List a thread's messages."""
    await owned(session, Thread, thread_id, project)
    where = [col(Message.thread_id) == thread_id]
    if run_id is not None:
        where.append(col(Message.run_id) == run_id)
    return await page(session, Message, params, *where)


@router.get("/{message_id}")
async def retrieve_message(thread_id: str, message_id: str, project: Project, session: Session) -> Response:
    """Retrieve a message."""
    return wire((await owned(session, Message, message_id, project, thread_id=thread_id)).to_openai())


@router.post("/{message_id}")
async def modify_message(
    thread_id: str, message_id: str, body: MessageUpdate, project: Project, session: Session
) -> Response:
    """Modify a message's metadata."""
    row = await owned(session, Message, message_id, project, thread_id=thread_id)
    if "metadata" in body.model_fields_set:
        row.meta = body.metadata
    session.add(row)
    await session.commit()
    return wire(row.to_openai())


@router.delete("/{message_id}")
async def delete_message(thread_id: str, message_id: str, project: Project, session: Session) -> Response:
    """Delete a message."""
    row = await owned(session, Message, message_id, project, thread_id=thread_id)
    await session.delete(row)
    await session.commit()
    return deleted(message_id, "thread.message")
