"""Responses: create, retrieve (or stream), delete, cancel, list input items, count input tokens.

A response is executed by the workers (api/response_jobs.py stores, enqueues and answers it);
this router checks requests, builds rows and reads them back.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from openai.types.responses import ResponseIncludable
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import response_jobs
from api.container_schemas import check_memory
from api.deps import Project, Session
from api.errors import BadRequest, NotFound
from api.item_rows import count_tokens, item_rows, page_items, wire_items
from api.pagination import Listing
from api.params import Checked
from api.response_schemas import (
    AutoContainer,
    CodeInterpreterTool,
    Include,
    InputTokensCount,
    ResponseContext,
    ResponseCreate,
)
from api.store import check_refs, dumped_one
from core.ids import now
from core.models import new_row
from core.removal import remove_response
from core.responses import ACTIVE_RESPONSE_STATUSES, CONVERSATIONS, RESPONSES, Item, wire_response
from core.responses import Response as ResponseRow
from core.store import RunStore

router = APIRouter(prefix="/responses", tags=["responses"], dependencies=[Checked])


@router.post("")
async def create_response(request: Request, body: ResponseCreate, project: Project) -> Response:
    """Create a model response."""
    store: RunStore = request.app.state.store
    body.check()
    for n, tool in enumerate(body.tools or []):
        if isinstance(tool, CodeInterpreterTool) and isinstance(tool.container, AutoContainer):
            limit, ceiling = tool.container.memory_limit, request.app.state.settings.container_max_memory
            check_memory(limit or "1g", ceiling, f"tools[{n}].container.memory_limit")
    wired = await wire_items(store, project, body.items(), "input")
    conversation_id = await check_context(store, project, body)
    row = response_row(request, project, body, conversation_id)
    return await response_jobs.submit(request, row, item_rows(project, wired, response_id=row["id"]))


@router.post("/input_tokens")
async def count_input_tokens(
    request: Request, body: InputTokensCount, project: Project, session: Session
) -> Response:
    """The input tokens a response with this input would have: counted in the model's encoding
    for OpenAI's model names, about 4 characters each for others (core/tokens.py)."""
    store: RunStore = request.app.state.store
    body.check()
    wired = await wire_items(store, project, body.items(), "input")
    conversation_id = await check_context(store, project, body, creating=False)
    earlier = await history(session, body.previous_response_id, conversation_id)
    tools = [t.stored() for t in body.tools or []]
    # in the thread pool: a long input takes milliseconds to count, and the first count in the
    # process loads the encoding (0.1-0.2 s)
    tokens = await run_in_threadpool(
        count_tokens, body.instructions, earlier + wired, tools, body.model or ""
    )
    return JSONResponse({"object": "response.input_tokens", "input_tokens": tokens})


@router.get("/{response_id}")
async def retrieve_response(
    request: Request,
    response_id: str,
    project: Project,
    stream: bool = False,
    starting_after: int = -1,
    include: list[ResponseIncludable] | None = Include,
    include_obfuscation: bool | None = None,
) -> Response:
    """Retrieve a response, or (`stream=true`) replay a background response's events and follow it."""
    row = await owned_response(request.app.state.store, response_id, project)
    if not stream:
        return answer(dict(row._mapping) | {"include": include})  # what this request asks to see
    if not (row.background and row.stream):  # as OpenAI: only their events are kept
        raise BadRequest(
            "Only responses created with background=true and stream=true can be streamed again; "
            "retrieve this one without 'stream'.",
            param="stream",
        )
    return response_jobs.relay(request, response_id, starting_after, project=project)


@router.delete("/{response_id}")
async def delete_response(request: Request, response_id: str, project: Project, session: Session) -> Response:
    """Delete a response and its items (those a conversation holds stay in it)."""
    store: RunStore = request.app.state.store
    row = await owned_response(store, response_id, project)
    if row.status in ACTIVE_RESPONSE_STATUSES:  # its waiters and its worker stop first
        await response_jobs.cancel(store, response_id)
    await remove_response(await session.connection(), response_id)
    await session.commit()
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


@router.post("/{response_id}/cancel")
async def cancel_response(request: Request, response_id: str, project: Project) -> Response:
    """Cancel a background response; one that already ended is answered as it stands."""
    store: RunStore = request.app.state.store
    row = await owned_response(store, response_id, project)
    if not row.background:
        raise BadRequest("Only responses created with background=true can be cancelled.")
    cancelled = await response_jobs.cancel(store, response_id)
    if cancelled is None:  # it ended, possibly since it was read above
        return answer((await owned_response(store, response_id, project))._mapping)
    return answer(cancelled)


@router.get("/{response_id}/input_items")
async def list_input_items(
    request: Request,
    response_id: str,
    params: Listing,
    project: Project,
    session: Session,
    include: list[ResponseIncludable] | None = Include,
) -> Response:
    """List the input items of a response."""
    await owned_response(request.app.state.store, response_id, project)
    of_response = col(Item.response_id) == response_id, col(Item.output).is_(False)
    return await page_items(session, params, include, *of_response)


async def owned_response(store: RunStore, response_id: str, project: str) -> Any:
    """The caller's stored response, or 404 (a `store: false` one is never there, even while it runs)."""
    row = await store.owned(RESPONSES, response_id, project)
    if row is None or not row.store:
        raise NotFound.of("response", response_id)
    return row


def answer(columns: Any) -> Response:
    """The response whose columns these are, on the wire (integer timestamps, as the create answers)."""
    row = SimpleNamespace(**{("meta" if k == "metadata" else k): v for k, v in columns.items()})
    return Response(json.dumps(wire_response(row)), media_type="application/json")


async def check_context(
    store: RunStore, project: str, body: ResponseContext, creating: bool = True
) -> str | None:
    """The request's files, its previous response and its conversation (the conversation's id):
    a 404 (a 400 for a response that is not stored) before anything is written."""
    await check_refs(store, project, body)
    previous = body.previous_response_id
    if previous is not None:
        row = await store.owned(RESPONSES, previous, project)
        message = f"Previous response with id '{previous}' not found."
        if row is None:
            raise NotFound(message, param="previous_response_id", code="previous_response_not_found")
        if not row.store:  # it is gone once it ends; OpenAI answers a 400 for it
            raise BadRequest(message, param="previous_response_id", code="previous_response_not_found")
        if (
            creating and row.status in ACTIVE_RESPONSE_STATUSES
        ):  # its output, which this one follows, is not there yet
            raise BadRequest(
                f"Previous response with id '{previous}' is still {row.status}: wait until it ends.",
                param="previous_response_id",
            )
    conversation = body.conversation_id
    if conversation is not None and not await store.owned_ids(CONVERSATIONS, [conversation], project):
        raise NotFound(f"Conversation with id '{conversation}' not found.", param="conversation")
    return conversation


def response_row(
    request: Request, project: str, body: ResponseCreate, conversation_id: str | None
) -> dict[str, Any]:
    """Column values of a queued response."""
    created = now()
    return new_row(
        "resp",
        **QUEUED,
        project=project,
        created_at=created,
        enqueued_at=created,
        expires_at=created + request.app.state.settings.run_timeout_seconds,
        model=body.model,
        instructions=body.instructions,
        tools=[t.stored() for t in body.tools or []],
        tool_choice=dumped_one(body.tool_choice) if body.tool_choice is not None else "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False,
        max_output_tokens=body.max_output_tokens,
        max_tool_calls=body.max_tool_calls,
        temperature=body.temperature,
        top_p=body.top_p,
        text_format=body.text.stored() if body.text is not None else None,
        truncation=body.truncation or "disabled",
        reasoning=body.reasoning.model_dump() if body.reasoning is not None else None,
        include=body.include,
        user=body.user,
        safety_identifier=body.safety_identifier,
        prompt_cache_key=body.prompt_cache_key,
        meta=body.metadata,
        store=body.store is not False,
        background=bool(body.background),
        stream=bool(body.stream),
        previous_response_id=body.previous_response_id,
        conversation_id=conversation_id,
    )


# A new response's columns that nothing in the request sets (a Core insert applies no ORM defaults).
QUEUED = {
    "status": "queued",
    "attempts": 0,
    "output": None,
    "usage": None,
    "error": None,
    "incomplete_details": None,
    "completed_at": None,
    "owner": None,
    "lease_until": None,
    "started_at": None,
}


async def history(
    session: AsyncSession, previous: str | None, conversation_id: str | None
) -> list[dict[str, Any]]:
    """The items a new response's input follows: its conversation's, or those of its chain of
    previous responses (each one's input, then its output), oldest first."""
    if conversation_id is not None:
        return await item_data(session, col(Item.conversation_id) == conversation_id)
    out: list[dict[str, Any]] = []
    while previous is not None:
        out = await item_data(session, col(Item.response_id) == previous) + out
        up = select(ResponseRow.previous_response_id).where(col(ResponseRow.id) == previous)
        previous = (await session.exec(up)).first()
    return out


async def item_data(session: AsyncSession, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    query = select(Item.data).where(where).order_by(col(Item.seq))
    return [dict(data) for data in (await session.exec(query)).all()]
