"""Assistants: create, retrieve, modify, delete, list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col

from api.deps import Project, Session
from api.pagination import Listing, page
from api.params import Checked
from api.responses import deleted, wire
from api.schemas import AssistantCreate, AssistantUpdate
from api.store import check_refs, dumped, dumped_one, owned
from api.vector_store_rows import resolve_resources, send
from core.models import Assistant

router = APIRouter(prefix="/assistants", tags=["assistants"], dependencies=[Checked])


@router.post("")
async def create_assistant(
    request: Request, body: AssistantCreate, project: Project, session: Session
) -> Response:
    """Create an assistant."""
    await check_refs(session, project, body)
    settings = request.app.state.settings
    tool_resources, pending = await resolve_resources(
        session, settings, project, body.tool_resources, for_thread=False
    )
    row = Assistant(
        project=project,
        model=body.model,
        name=body.name,
        description=body.description,
        instructions=body.instructions,
        tools=dumped(body.tools) or [],
        tool_resources=tool_resources,
        meta=body.metadata,
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=dumped_one(body.response_format),
        reasoning_effort=body.reasoning_effort,
    )
    session.add(row)
    await session.commit()
    await send(pending)
    return wire(row.to_openai())


@router.get("")
async def list_assistants(params: Listing, project: Project, session: Session) -> Response:
    """List assistants."""
    return await page(session, Assistant, params, col(Assistant.project) == project)


@router.get("/{assistant_id}")
async def retrieve_assistant(assistant_id: str, project: Project, session: Session) -> Response:
    """Retrieve an assistant."""
    return wire((await owned(session, Assistant, assistant_id, project)).to_openai())


@router.post("/{assistant_id}")
async def modify_assistant(
    request: Request, assistant_id: str, body: AssistantUpdate, project: Project, session: Session
) -> Response:
    """Modify an assistant: only the fields sent change."""
    row = await owned(session, Assistant, assistant_id, project)
    await check_refs(session, project, body)
    sent = body.model_fields_set
    for field in ("model", "name", "description", "instructions", "temperature", "top_p", "reasoning_effort"):
        if field in sent:
            setattr(row, field, getattr(body, field))
    if "tools" in sent:
        row.tools = dumped(body.tools) or []
    pending: list[tuple[str, str]] = []
    if "tool_resources" in sent:
        row.tool_resources, pending = await resolve_resources(
            session, request.app.state.settings, project, body.tool_resources, for_thread=False
        )
    if "metadata" in sent:
        row.meta = body.metadata
    if "response_format" in sent:
        row.response_format = dumped_one(body.response_format)
    session.add(row)
    await session.commit()
    await send(pending)
    return wire(row.to_openai())


@router.delete("/{assistant_id}")
async def delete_assistant(assistant_id: str, project: Project, session: Session) -> Response:
    """Delete an assistant."""
    row = await owned(session, Assistant, assistant_id, project)
    await session.delete(row)
    await session.commit()
    return deleted(assistant_id, "assistant")
