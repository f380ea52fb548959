"""Messages: create, retrieve, modify, delete, list (with a run_id filter)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Project, Session
from api.errors import BadRequest, NotFound
from api.pagination import Listing, owned_page
from api.params import Checked
from api.responses import deleted, listing, wire
from api.schemas import MessageCreate, MessageUpdate
from api.store import active_run, check_refs, insert, message_row, owned
from api.vector_store_rows import attach_to_thread, file_search_attachments, send
from core.models import MESSAGES, THREADS, Message, Thread, wire_of
from core.store import RunStore

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"], dependencies=[Checked])


def refuse_if_run_active(thread_id: str, active: str | None) -> None:
    """OpenAI does not let messages be added while a run works on the thread."""
    if active:
        raise BadRequest(f"Can't add messages to {thread_id} while a run {active} is active.")


@router.post("")
async def create_message(request: Request, thread_id: str, body: MessageCreate, project: Project) -> Response:
    """Create a message."""
    if file_search_attachments([body]):
        async with request.app.state.sessions() as session:
            return await create_attaching(request, thread_id, body, project, session)
    # nothing to ingest: one statement through the run store (the insert, guarded by the
    # thread's checks), no ORM session; the checks are read apart only when it wrote nothing
    store: RunStore = request.app.state.store
    if body.references():  # the thread's errors come first, then the references'
        await thread_ready(store, thread_id, project)
        await check_refs(store, project, body)
    row = message_row(project, thread_id, body)
    if not await store.insert_into_thread(thread_id, project, [(MESSAGES, [row])], idle=True):
        await thread_ready(store, thread_id, project)
        raise NotFound.of("thread", thread_id)  # deleted meanwhile
    return wire(wire_of(Message, row))


async def thread_ready(store: RunStore, thread_id: str, project: str) -> None:
    """404 unless the thread is the caller's, 400 while a run is active on it."""
    if await store.owned(THREADS, thread_id, project) is None:
        raise NotFound.of("thread", thread_id)
    refuse_if_run_active(thread_id, await store.active_run(thread_id))


async def create_attaching(
    request: Request, thread_id: str, body: MessageCreate, project: str, session: AsyncSession
) -> Response:
    """Create a message whose file_search attachments join the thread's vector store."""
    thread = await owned(session, Thread, thread_id, project)
    refuse_if_run_active(thread_id, await active_run(session, thread_id))
    await check_refs(session, project, body)
    row = message_row(project, thread_id, body)
    await insert(session, Message, [row])
    thread.tool_resources, pending = await attach_to_thread(
        session, request.app.state.settings, project, thread.tool_resources, file_search_attachments([body])
    )
    session.add(thread)
    await session.commit()
    await send(pending)
    return wire(wire_of(Message, row))


@router.get("")
async def list_messages(
    request: Request, thread_id: str, params: Listing, project: Project, run_id: str | None = None
) -> Response:
    """List a thread's messages (through the run store: the quickstart lists them after every run)."""
    where = {"thread_id": thread_id} | ({"run_id": run_id} if run_id is not None else {})
    store = request.app.state.store
    rows, has_more = await owned_page(store, "thread", THREADS, thread_id, MESSAGES, where, params, project)
    return listing([wire_of(Message, r._mapping) for r in rows], has_more)


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
