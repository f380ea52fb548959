"""Conversations: create (with initial items), retrieve, update, delete; their items: add, list,
retrieve, delete.

A conversation's items are `items` rows given its id, in `seq` order: those added here, and the
input and output items of the responses run on it (added by the workers when a response ends).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from openai.types.responses import ResponseIncludable
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Project, Session
from api.errors import BadRequest, NotFound
from api.item_rows import item_rows, listed, page_items, wire_items
from api.pagination import Listing
from api.params import Checked
from api.response_jobs import LOCKED
from api.response_schemas import ConversationCreate, ConversationItemsCreate, ConversationUpdate, Include
from api.responses import deleted, listing, wire
from api.store import check_refs
from core.models import new_row, wire_of
from core.removal import remove_conversation
from core.responses import ACTIVE_RESPONSE_STATUSES, CONVERSATIONS, ITEMS, Conversation, Item, shown
from core.responses import Response as ResponseRow
from core.store import RunStore

router = APIRouter(prefix="/conversations", tags=["conversations"], dependencies=[Checked])


@router.post("")
async def create_conversation(
    request: Request, project: Project, body: ConversationCreate | None = None
) -> Response:
    """Create a conversation, with up to 20 initial items."""
    body = body or ConversationCreate()
    store: RunStore = request.app.state.store
    wired = await wire_items(store, project, body.items or [], "items")
    await check_refs(store, project, body)
    conversation = new_row("conv", project=project, meta=body.metadata)
    rows = item_rows(project, wired, conversation_id=conversation["id"])
    await store.insert([(CONVERSATIONS, [conversation]), (ITEMS, rows)])
    return wire(wire_of(Conversation, conversation))


@router.get("/{conversation_id}")
async def retrieve_conversation(conversation_id: str, project: Project, session: Session) -> Response:
    """Retrieve a conversation."""
    return wire((await owned_conversation(session, conversation_id, project)).to_openai())


@router.post("/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, project: Project, session: Session
) -> Response:
    """Update a conversation's metadata."""
    row = await owned_conversation(session, conversation_id, project)
    row.meta = body.metadata
    session.add(row)
    await session.commit()
    return wire(row.to_openai())


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: str, project: Project, session: Session) -> Response:
    """Delete a conversation and its items (the responses run on it keep theirs)."""
    await owned_conversation(session, conversation_id, project)
    active = await active_response(session, conversation_id)
    if active is not None:  # its end would add items to a conversation that is gone
        raise BadRequest(f"Can't delete {conversation_id} while a response {active} is active on it.")
    await remove_conversation(await session.connection(), conversation_id)
    await session.commit()
    return deleted(conversation_id, "conversation")


@router.post("/{conversation_id}/items")
async def create_items(
    request: Request,
    conversation_id: str,
    body: ConversationItemsCreate,
    project: Project,
    session: Session,
    include: list[ResponseIncludable] | None = Include,
) -> Response:
    """Add up to 20 items to a conversation."""
    store: RunStore = request.app.state.store
    if not await store.owned_ids(CONVERSATIONS, [conversation_id], project):
        raise NotFound.of("conversation", conversation_id)
    wired = await wire_items(store, project, body.items, "items")
    await check_refs(store, project, body)
    if await active_response(session, conversation_id):  # they would land between its input and output
        raise BadRequest(LOCKED, param="conversation", code="conversation_locked")
    rows = item_rows(project, wired, conversation_id=conversation_id)
    await store.insert([(ITEMS, rows)])
    return listing(listed(rows), has_more=False)


@router.get("/{conversation_id}/items")
async def list_items(
    conversation_id: str,
    params: Listing,
    project: Project,
    session: Session,
    include: list[ResponseIncludable] | None = Include,
) -> Response:
    """List a conversation's items."""
    await owned_conversation(session, conversation_id, project)
    return await page_items(session, params, include, col(Item.conversation_id) == conversation_id)


@router.get("/{conversation_id}/items/{item_id}")
async def retrieve_item(
    conversation_id: str,
    item_id: str,
    project: Project,
    session: Session,
    include: list[ResponseIncludable] | None = Include,
) -> Response:
    """Retrieve an item of a conversation."""
    item = await owned_item(session, conversation_id, item_id, project)
    return JSONResponse(shown([item.data], include)[0])


@router.delete("/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, project: Project, session: Session) -> Response:
    """Delete an item from a conversation (an item of a response stays that response's); answers
    the conversation."""
    item = await owned_item(session, conversation_id, item_id, project)
    if item.response_id is None:
        await session.delete(item)
    else:
        item.conversation_id = None
        session.add(item)
    await session.commit()
    return wire((await owned_conversation(session, conversation_id, project)).to_openai())


async def owned_conversation(session: AsyncSession, conversation_id: str, project: str) -> Conversation:
    row = await session.get(Conversation, conversation_id)
    if row is None or row.project != project:
        raise NotFound.of("conversation", conversation_id)
    return row


async def owned_item(session: AsyncSession, conversation_id: str, item_id: str, project: str) -> Item:
    await owned_conversation(session, conversation_id, project)
    item = await session.get(Item, item_id)
    if item is None or item.project != project or item.conversation_id != conversation_id:
        raise NotFound.of("item", item_id)
    return item


async def active_response(session: AsyncSession, conversation_id: str) -> str | None:
    """The id of the queued or in_progress response on the conversation, if there is one."""
    on_it = col(ResponseRow.conversation_id) == conversation_id
    query = select(ResponseRow.id).where(on_it, col(ResponseRow.status).in_(ACTIVE_RESPONSE_STATUSES))
    return (await session.exec(query)).first()
