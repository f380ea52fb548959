"""Threads: create (with initial messages), retrieve, modify, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import Project, Session
from api.errors import BadRequest
from api.params import Checked
from api.responses import deleted, wire
from api.schemas import ThreadCreate, ThreadUpdate
from api.store import active_run, check_refs, insert, owned, thread_rows
from api.vector_store_rows import file_search_attachments, resolve_resources, send, thread_resources
from core.models import MESSAGES, THREADS, Message, Thread, wire_of
from core.removal import remove_thread

router = APIRouter(prefix="/threads", tags=["threads"], dependencies=[Checked])


@router.post("")
async def create_thread(request: Request, project: Project, body: ThreadCreate | None = None) -> Response:
    """Create a thread."""
    thread, messages = thread_rows(project, body)
    if body is not None and (body.tool_resources or file_search_attachments(body.messages or [])):
        async with request.app.state.sessions() as session:
            await check_refs(session, project, body)
            thread["tool_resources"], pending = await thread_resources(
                session, request.app.state.settings, project, body.tool_resources, body.messages or []
            )
            await insert(session, Thread, [thread])
            await insert(session, Message, messages)
            await session.commit()
        await send(pending)
        return wire(wire_of(Thread, thread))
    # nothing to ingest: one statement through the run store, no ORM session
    store = request.app.state.store
    if body is not None:
        await check_refs(store, project, body)
    await store.insert([(THREADS, [thread]), (MESSAGES, messages)])
    return wire(wire_of(Thread, thread))


@router.get("/{thread_id}")
async def retrieve_thread(thread_id: str, project: Project, session: Session) -> Response:
    """Retrieve a thread."""
    return wire((await owned(session, Thread, thread_id, project)).to_openai())


@router.post("/{thread_id}")
async def modify_thread(
    request: Request, thread_id: str, body: ThreadUpdate, project: Project, session: Session
) -> Response:
    """Modify a thread's metadata and tool resources."""
    row = await owned(session, Thread, thread_id, project)
    await check_refs(session, project, body)
    if "metadata" in body.model_fields_set:
        row.meta = body.metadata
    pending: list[tuple[str, str]] = []
    if "tool_resources" in body.model_fields_set:
        row.tool_resources, pending = await resolve_resources(
            session, request.app.state.settings, project, body.tool_resources, for_thread=True
        )
    session.add(row)
    await session.commit()
    await send(pending)
    return wire(row.to_openai())


@router.delete("/{thread_id}")
async def delete_thread(thread_id: str, project: Project, session: Session) -> Response:
    """Delete a thread with its messages, runs and run steps."""
    await owned(session, Thread, thread_id, project)
    active = await active_run(session, thread_id)
    if active:  # its worker and its stream would be left talking about a thread that is gone
        raise BadRequest(f"Can't delete {thread_id} while a run {active} is active; cancel it first.")
    await remove_thread(await session.connection(), thread_id)
    await session.commit()
    return deleted(thread_id, "thread")
