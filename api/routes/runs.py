"""Runs: create (and create thread and run), retrieve, list, modify, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from api import polls, streams
from api.deps import Project, Session
from api.errors import BadRequest, NotFound
from api.pagination import Listing, page
from api.params import Checked
from api.responses import run_response
from api.schemas import (
    RunCreate,
    RunParams,
    RunUpdate,
    SubmitToolOutputs,
    ThreadAndRunCreate,
    ToolChoice,
    ToolChoiceObject,
)
from api.store import (
    active_run,
    check_refs,
    dumped,
    dumped_one,
    insert,
    message_row,
    owned,
    owned_row,
    resources,
    thread_rows,
)
from api.vector_store_rows import attach_to_thread, file_search_attachments, send, thread_resources
from core.errors import Conflict
from core.ids import now
from core.models import (
    ASSISTANTS,
    MESSAGES,
    RUNS,
    THREADS,
    Assistant,
    Message,
    Run,
    RunStep,
    Thread,
    new_row,
    wire_of,
)
from core.store import RunStore

router = APIRouter(tags=["runs"], dependencies=[Checked])


def run_row(
    request: Request, project: str, thread_id: str, assistant: Any, body: RunParams
) -> dict[str, Any]:
    """Column values of a queued run: the run's overrides, else the assistant's settings."""
    sent = body.model_fields_set
    tools = dumped(body.tools) if body.tools is not None else list(assistant.tools or [])
    check_tool_choice(body.tool_choice, tools)
    instructions = body.instructions if "instructions" in sent else assistant.instructions
    extra = getattr(body, "additional_instructions", None)
    if extra:
        instructions = f"{instructions}\n\n{extra}" if instructions else extra
    created = now()
    return new_row(
        "run",
        **QUEUED,
        project=project,
        thread_id=thread_id,
        assistant_id=assistant.id,
        created_at=created,
        model=body.model or assistant.model,
        instructions=instructions or "",
        tools=tools,
        tool_choice=dumped_one(body.tool_choice) if body.tool_choice is not None else "auto",
        temperature=body.temperature if body.temperature is not None else assistant.temperature,
        top_p=body.top_p if body.top_p is not None else assistant.top_p,
        response_format=dumped_one(body.response_format)
        if body.response_format
        else assistant.response_format,
        parallel_tool_calls=True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        truncation_strategy=(body.truncation_strategy.model_dump() if body.truncation_strategy else None),
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        reasoning_effort=body.reasoning_effort or assistant.reasoning_effort,
        meta=body.metadata,
        expires_at=created + request.app.state.settings.run_timeout_seconds,
        enqueued_at=created,
        stream=bool(body.stream),
        tool_resources=resources(getattr(body, "tool_resources", None)),
    )


# A new run's columns that nothing in the request sets (a Core insert applies no ORM defaults).
QUEUED = {
    "status": "queued",
    "attempts": 0,
    "usage": None,
    "last_error": None,
    "incomplete_details": None,
    "required_action": None,
    "started_at": None,
    "completed_at": None,
    "cancelled_at": None,
    "failed_at": None,
    "owner": None,
    "lease_until": None,
}


def check_tool_choice(choice: ToolChoice | None, tools: list[dict[str, Any]]) -> None:
    """A forced tool must be one the run has."""
    if not isinstance(choice, ToolChoiceObject):
        return
    if choice.type != "function":
        if choice.type not in {t.get("type") for t in tools}:
            raise BadRequest(
                f"tool_choice forces '{choice.type}', which is not in tools.", param="tool_choice"
            )
        return
    name = choice.function.name if choice.function else None
    if name is None:
        raise BadRequest("Missing required parameter: 'tool_choice.function'.", param="tool_choice.function")
    if not any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
        raise BadRequest(
            f"tool_choice names the function '{name}', which is not in tools.", param="tool_choice"
        )


async def commit_and_enqueue(
    request: Request, session: AsyncSession, run: dict[str, Any], thread: dict[str, Any] | None = None
) -> Response:
    """Store the run, then hand its id to the workers (the sweeper re-sends it if that fails).

    A streaming run answers with its events instead, starting with the API's own."""
    await opening_events(run, thread)
    try:
        await insert(session, Run, [run])
        await session.commit()
    except IntegrityError:
        await session.rollback()
        active = await active_run(session, run["thread_id"])
        raise BadRequest(f"Thread {run['thread_id']} already has an active run {active}.") from None
    return announce(request, run)


async def opening_events(run: dict[str, Any], thread: dict[str, Any] | None = None) -> None:
    """A streaming run's first events, the API's own, written before the run is stored: when the
    event log cannot take them the request fails with nothing stored, so the client's retry
    makes no second run. (Those of a run that is then refused stay unread until they expire.)"""
    if run["stream"]:
        wire = wire_of(Run, run)
        events = [streams.event("thread.created", wire_of(Thread, thread))] if thread is not None else []
        events += [streams.event("thread.run.created", wire), streams.event("thread.run.queued", wire)]
        await streams.publish(run["id"], events)


def announce(request: Request, run: dict[str, Any]) -> Response:
    """Hand a stored run's id to the workers; the response (a streaming run's: its events)."""
    request.app.state.enqueue(run["id"])
    if run["stream"]:
        return streams.stream(run["id"])
    return run_response(wire_of(Run, run), request.app.state.settings.poll_after_ms)


@router.post("/threads/runs")
async def create_thread_and_run(request: Request, body: ThreadAndRunCreate, project: Project) -> Response:
    """Create a thread and run it in one request."""
    files = body.thread is not None and (
        body.thread.tool_resources or file_search_attachments(body.thread.messages or [])
    )
    store = request.app.state.store
    if not files:  # nothing to ingest: one read and one write, no ORM session
        assistant = await store.owned(ASSISTANTS, body.assistant_id, project)
        if assistant is None:
            raise NotFound.of("assistant", body.assistant_id)
        await check_refs(store, project, body)
        thread, messages = thread_rows(project, body.thread)
        run = run_row(request, project, thread["id"], assistant, body)
        await opening_events(run, thread)
        await store.insert([(THREADS, [thread]), (MESSAGES, messages), (RUNS, [run])])
        return announce(request, run)
    async with request.app.state.sessions() as session:
        assistant = await owned_row(session, Assistant, body.assistant_id, project)
        await check_refs(session, project, body)
        thread, messages = thread_rows(project, body.thread)
        run = run_row(request, project, thread["id"], assistant, body)
        pending: list[tuple[str, str]] = []
        if files and body.thread is not None:
            thread["tool_resources"], pending = await thread_resources(
                session,
                request.app.state.settings,
                project,
                body.thread.tool_resources,
                body.thread.messages or [],
            )
        await insert(session, Thread, [thread])
        await insert(session, Message, messages)
        response = await commit_and_enqueue(request, session, run, thread)
    await send(pending)  # ingestion of attached files; the run's file_search waits for it
    return response


@router.post("/threads/{thread_id}/runs")
async def create_run(
    request: Request,
    thread_id: str,
    body: RunCreate,
    project: Project,
    include: list[str] | None = Query(None, alias="include[]"),
) -> Response:
    """Create a run."""
    if file_search_attachments(body.additional_messages or []):
        async with request.app.state.sessions() as session:
            response = await create_attaching(request, thread_id, body, project, session)
        return response
    # nothing to ingest: the assistant's read and one write (guarded by the thread's check)
    # through the run store, no ORM session
    store: RunStore = request.app.state.store
    assistant = await store.owned(ASSISTANTS, body.assistant_id, project)
    if assistant is None or body.references():  # the thread's 404 comes first
        if await store.owned(THREADS, thread_id, project) is None:
            raise NotFound.of("thread", thread_id)
    if assistant is None:
        raise NotFound.of("assistant", body.assistant_id)
    await check_refs(store, project, body)
    run = run_row(request, project, thread_id, assistant, body)
    added = [message_row(project, thread_id, m) for m in body.additional_messages or []]
    await opening_events(run)
    try:
        written = await store.insert_into_thread(
            thread_id, project, [(MESSAGES, added), (RUNS, [run])], idle=False
        )
    except Conflict:
        raise BadRequest(
            f"Thread {thread_id} already has an active run {await store.active_run(thread_id)}."
        ) from None
    if not written:
        raise NotFound.of("thread", thread_id)
    return announce(request, run)


async def create_attaching(
    request: Request, thread_id: str, body: RunCreate, project: str, session: AsyncSession
) -> Response:
    """Create a run whose additional messages' file_search attachments join the thread's vector store."""
    thread = await owned_row(session, Thread, thread_id, project)
    assistant = await owned_row(session, Assistant, body.assistant_id, project)
    await check_refs(session, project, body)
    run = run_row(request, project, thread_id, assistant, body)
    await insert(
        session, Message, [message_row(project, thread_id, m) for m in body.additional_messages or []]
    )
    searchable = file_search_attachments(body.additional_messages or [])
    resources, pending = await attach_to_thread(
        session, request.app.state.settings, project, thread.tool_resources, searchable
    )
    await session.exec(update(Thread).where(col(Thread.id) == thread_id).values(tool_resources=resources))
    response = await commit_and_enqueue(request, session, run)
    await send(pending)
    return response


@router.get("/threads/{thread_id}/runs")
async def list_runs(thread_id: str, params: Listing, project: Project, session: Session) -> Response:
    """List a thread's runs."""
    await owned(session, Thread, thread_id, project)
    return await page(session, Run, params, col(Run.thread_id) == thread_id)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(request: Request, thread_id: str, run_id: str, project: Project) -> Response:
    """Retrieve a run (a poll helper's retrieve of a run still going: once it changes). Read
    through the run store, no session: polls are the busiest read of the API."""
    store: RunStore = request.app.state.store
    row = await store.owned(RUNS, run_id, project)
    if row is None or row.thread_id != thread_id:
        raise NotFound.of("run", run_id)
    if polls.wants_wait(request, row.status):

        async def still_going() -> bool:
            now_row = await store.owned(RUNS, run_id, project)
            return now_row is not None and now_row.status in polls.GOING

        await polls.until_changed(request, run_id, still_going)
        row = (
            await store.owned(RUNS, run_id, project) or row
        )  # (deleted with its thread meanwhile: as it was)
    return run_response(wire_of(Run, row._mapping), request.app.state.settings.poll_after_ms)


@router.post("/threads/{thread_id}/runs/{run_id}")
async def modify_run(
    request: Request, thread_id: str, run_id: str, body: RunUpdate, project: Project, session: Session
) -> Response:
    """Modify a run's metadata."""
    run = await owned(session, Run, run_id, project, thread_id=thread_id)
    if "metadata" in body.model_fields_set:
        await session.exec(update(Run).where(col(Run.id) == run_id).values(meta=body.metadata))
        await session.commit()
        await session.refresh(run)
    return run_response(run.to_openai(), request.app.state.settings.poll_after_ms)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    request: Request, thread_id: str, run_id: str, project: Project, session: Session
) -> Response:
    """Cancel a run: `cancelling` until the worker stops at its next boundary."""
    run = await owned(session, Run, run_id, project, thread_id=thread_id)
    moves = (("requires_action", "cancelled"), ("queued", "cancelling"), ("in_progress", "cancelling"))
    step: RunStep | None = None
    for source, target in moves:
        values: dict[str, Any] = {"status": target}
        if target == "cancelled":
            values.update(cancelled_at=now(), required_action=None)
        result = await session.exec(
            update(Run).where(col(Run.id) == run_id, col(Run.status) == source).values(**values)
        )
        if result.rowcount:
            if target == "cancelled":
                step = await finish_pending_step(
                    session, run_id, "cancelled", cancelled_at=values["cancelled_at"]
                )
            await session.commit()
            break
    else:
        await session.refresh(run)
        raise BadRequest(f"Cannot cancel run with status '{run.status}'.")
    await session.refresh(run)
    if run.status == "cancelling":
        request.app.state.enqueue(run_id)  # a queued run is finished off by whichever worker gets this
    if run.stream:
        name = "thread.run.cancelling" if run.status == "cancelling" else "thread.run.cancelled"
        events = [streams.event("thread.run.step.cancelled", step.to_openai())] if step is not None else []
        await streams.publish(run_id, events + [streams.event(name, run.to_openai())])
    return run_response(run.to_openai(), request.app.state.settings.poll_after_ms)


async def finish_pending_step(
    session: AsyncSession, run_id: str, status: str, **values: Any
) -> RunStep | None:
    """Close the run's tool_calls step that waits for outputs; the step, or None if there is none."""
    step = (
        await session.exec(
            select(RunStep).where(
                RunStep.run_id == run_id, RunStep.type == "tool_calls", RunStep.status == "in_progress"
            )
        )
    ).first()
    if step is not None:
        step.status = status
        for key, value in values.items():
            setattr(step, key, value)
        session.add(step)
    return step


def check_outputs(run: Run, body: SubmitToolOutputs) -> dict[str, str]:
    """Every pending call answered exactly once: tool_call_id -> output, or 400."""
    pending = [
        c["id"] for c in (run.required_action or {}).get("submit_tool_outputs", {}).get("tool_calls", [])
    ]
    given = [o.tool_call_id for o in body.tool_outputs]
    duplicates = sorted({i for i in given if given.count(i) > 1})
    unknown = [i for i in given if i not in pending]
    missing = [i for i in pending if i not in given]
    for problem, ids in (("Duplicate", duplicates), ("Unknown", unknown), ("Missing", missing)):
        if ids:
            raise BadRequest(
                f"{problem} tool outputs for tool call(s): {', '.join(ids)}. Expected one output for each of "
                f"{', '.join(pending)}.",
                param="tool_outputs",
            )
    return {o.tool_call_id: o.output for o in body.tool_outputs}


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    request: Request, thread_id: str, run_id: str, body: SubmitToolOutputs, project: Project, session: Session
) -> Response:
    """Submit the outputs of the function calls a run is waiting for; the run continues."""
    run = await owned(session, Run, run_id, project, thread_id=thread_id)
    if run.status != "requires_action":
        raise BadRequest(f'Runs in status "{run.status}" do not accept tool outputs.')
    t = now()
    if run.expires_at is not None and run.expires_at < t:
        raise BadRequest(f"Run {run_id} has expired: its tool outputs were due by {int(run.expires_at)}.")
    outputs = check_outputs(run, body)
    step = await finish_pending_step(session, run_id, "completed", completed_at=t)
    if step is not None:
        calls = (step.step_details or {})["tool_calls"]
        answered = [
            c | {"function": c["function"] | {"output": outputs.get(c["id"])}}
            if c["type"] == "function"
            else c
            for c in calls
        ]
        step.step_details = {"type": "tool_calls", "tool_calls": answered}
    settings = request.app.state.settings
    result = await session.exec(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.status) == "requires_action")
        .values(
            status="queued",
            required_action=None,
            enqueued_at=t,
            expires_at=t + settings.run_timeout_seconds,
            stream=col(Run.stream) | bool(body.stream),
        )
    )
    if result.rowcount != 1:
        await session.rollback()
        raise BadRequest(f"Run {run_id} is no longer waiting for tool outputs.")
    await session.commit()
    await session.refresh(run)
    # ends the refresh's transaction: the session closes only after a streamed answer, and would
    # hold its connection (through PgBouncer, a server connection) idle in it to the run's end
    await session.commit()
    if not run.stream:
        request.app.state.enqueue(run_id)
        return run_response(run.to_openai(), settings.poll_after_ms)
    after = await streams.position(run_id)
    events = [streams.event("thread.run.step.completed", step.to_openai())] if step is not None else []
    await streams.publish(run_id, events + [streams.event("thread.run.queued", run.to_openai())])
    request.app.state.enqueue(run_id)
    return (
        streams.stream(run_id, after)
        if body.stream
        else run_response(run.to_openai(), settings.poll_after_ms)
    )
