"""The run loop: claim, build the prompt, call the model, write the outcome exactly once.

Every write that ends a turn is one transaction guarded by `owner = me AND status = ...`:
if the lease lapsed and another worker took the run over, the guard fails and nothing of
this attempt is written, so each model turn leaves exactly one message.

This is the hot path of every run, so it speaks SQLAlchemy Core (no ORM unit of work).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.ids import now
from core.models import Message, Run, RunStep, new_row
from workers.models import ModelClients
from workers.prompt import PromptTooLong, build_prompt

log = logging.getLogger("assistd.worker")
RUNS, MESSAGES, STEPS = Run.__table__, Message.__table__, RunStep.__table__  # type: ignore[attr-defined]


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    clients: ModelClients
    owner: str


def _mine(ctx: Context, run_id: str, *statuses: str) -> Any:
    c = RUNS.c
    return update(RUNS).where(c.id == run_id, c.owner == ctx.owner, c.status.in_(statuses))


# Statements built once: SQLAlchemy memoizes their cache keys, which matters on the hot path.
_c = RUNS.c
CLAIM = (
    update(RUNS)
    .where(_c.id == bindparam("run_id"), _c.status == "queued")
    .values(
        status="in_progress",
        owner=bindparam("owner"),
        lease_until=bindparam("lease_until"),
        started_at=bindparam("t"),
        attempts=_c.attempts + 1,
    )
    .returning(*RUNS.c)
)
CANCEL_QUEUED = (
    update(RUNS)
    .where(_c.id == bindparam("run_id"), _c.status == "cancelling", _c.owner.is_(None))
    .values(status="cancelled", cancelled_at=bindparam("t"), expires_at=None)
)
THREAD = (
    select(MESSAGES.c.id, MESSAGES.c.role, MESSAGES.c.content, MESSAGES.c.run_id)
    .where(MESSAGES.c.thread_id == bindparam("thread_id"))
    .order_by(MESSAGES.c.seq)
)
ROUNDS = (
    select(STEPS.c.type, STEPS.c.step_details).where(STEPS.c.run_id == bindparam("run_id")).order_by(STEPS.c.seq)
)


@dataclass
class Claimed:
    """A run this worker now owns, with what its prompt is built from."""

    run: Row[Any]
    thread: list[Row[Any]]
    steps: list[Row[Any]]


async def claim(ctx: Context, run_id: str) -> Claimed | None:
    """Atomically move a queued run to in_progress under our lease, with its thread's messages.

    None if the run is not ours to execute (someone else has it, or it is over).
    """
    t = now()
    async with ctx.engine.begin() as conn:
        lease = t + ctx.settings.run_lease_seconds
        run = (await conn.execute(CLAIM, {"run_id": run_id, "owner": ctx.owner, "lease_until": lease, "t": t})).first()
        if run is None:
            # a run cancelled while queued is finished off by whoever receives its id
            await conn.execute(CANCEL_QUEUED, {"run_id": run_id, "t": t})
            return None
        thread = list((await conn.execute(THREAD, {"thread_id": run.thread_id})).all())
        # usage is set once a round has been recorded: only then are there steps to replay
        steps = list((await conn.execute(ROUNDS, {"run_id": run_id})).all()) if run.usage else []
        return Claimed(run, thread, steps)


async def execute(ctx: Context, claimed: Claimed) -> None:
    """One model round for a claimed run: it ends completed, incomplete, failed or requires_action."""
    run = claimed.run
    try:
        prompt = build_prompt(run, claimed.thread, claimed.steps, ctx.clients.context_window(run.model))
    except PromptTooLong as exc:
        if run.max_prompt_tokens:
            await finish(ctx, run, "incomplete", incomplete_details={"reason": "max_prompt_tokens"})
        else:
            await fail(ctx, run, "invalid_prompt", f"The prompt is too long for {run.model}: {exc}.")
        return
    started = now()
    try:
        # `post` skips the SDK's parameter transformation: the body is already wire-shaped.
        completion = await ctx.clients.client(run.model).post(
            "/chat/completions", body=request_for(run, prompt.messages), cast_to=ChatCompletion
        )
    except openai.APIStatusError as exc:
        code = {429: "rate_limit_exceeded"}.get(exc.status_code)
        if code is None:
            code = "invalid_prompt" if exc.status_code in (400, 404, 413, 422) else "server_error"
        await fail(ctx, run, code, f"The model endpoint answered {exc.status_code}: {exc.message}")
        return
    except openai.APIError as exc:
        await fail(ctx, run, "server_error", f"The model endpoint failed: {exc}")
        return
    await record_turn(ctx, run, completion, started)


def request_for(run: Row[Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat-completions arguments from the run's settings."""
    req: dict[str, Any] = {"model": run.model, "messages": messages}
    if run.temperature is not None:
        req["temperature"] = run.temperature
    if run.top_p is not None:
        req["top_p"] = run.top_p
    if run.max_completion_tokens is not None:
        req["max_completion_tokens"] = run.max_completion_tokens
    if isinstance(run.response_format, dict) and run.response_format.get("type") != "text":
        req["response_format"] = run.response_format
    if run.reasoning_effort:
        req["reasoning_effort"] = run.reasoning_effort
    functions = [t for t in run.tools or [] if t.get("type") == "function"]
    if functions:
        req["tools"] = functions
        choice = run.tool_choice or "auto"
        if isinstance(choice, dict):  # only a function can be forced on a chat model
            choice = choice if choice.get("type") == "function" else "required"
        req["tool_choice"] = choice
        if run.parallel_tool_calls is False:
            req["parallel_tool_calls"] = False
    return req


def _usage(completion: ChatCompletion) -> dict[str, int]:
    u = completion.usage
    if u is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}


def _add(total: dict[str, int] | None, more: dict[str, int]) -> dict[str, int]:
    return {k: (total or {}).get(k, 0) + v for k, v in more.items()}


def _step(run: Row[Any], kind: str, details: dict[str, Any], **values: Any) -> dict[str, Any]:
    owned = {"project": run.project, "thread_id": run.thread_id, "assistant_id": run.assistant_id}
    blank = {"last_error": None, "completed_at": None, "cancelled_at": None, "failed_at": None, "expired_at": None}
    return new_row("step", **owned, **blank, run_id=run.id, type=kind, step_details=details) | values


async def record_turn(ctx: Context, run: Row[Any], completion: ChatCompletion, started: float) -> None:
    """Write this round's outcome in one transaction: the assistant's text (a message and its
    message_creation step), then either its tool calls (a tool_calls step, run requires_action)
    or the run's end."""
    choice = completion.choices[0]
    usage = _usage(completion)
    total = _add(run.usage, usage)
    t = now()
    calls = [c for c in choice.message.tool_calls or [] if c.type == "function"]
    reason = None
    if choice.finish_reason == "length":
        reason = "max_completion_tokens"
    elif run.max_prompt_tokens and total["prompt_tokens"] > run.max_prompt_tokens:
        reason = "max_prompt_tokens"
    inserts: list[tuple[Any, dict[str, Any]]] = []
    text = choice.message.content or ""
    if text or not calls:
        message = new_row(
            "msg",
            project=run.project,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            created_at=started,
            role="assistant",
            content=[{"type": "text", "text": {"value": text, "annotations": []}}],
            attachments=[],
            run_id=run.id,
            status="incomplete" if reason else "completed",
            completed_at=None if reason else t,
            incomplete_at=t if reason else None,
            incomplete_details={"reason": "max_tokens"} if reason else None,
        )
        details = {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        step_usage = None if calls else usage  # a round's usage goes on its last step
        inserts += [(MESSAGES, message), (STEPS, _step(run, "message_creation", details, created_at=started,
                                                       status="completed", completed_at=t, usage=step_usage))]
    if calls and not reason:
        await _require_action(ctx, run, calls, usage, total, started, inserts)
        return
    status = "incomplete" if reason else "completed"
    extra = {"incomplete_details": {"reason": reason}} if reason else {}
    await finish(ctx, run, status, usage=total, completed_at=t, inserts=inserts, **extra)


async def _require_action(
    ctx: Context,
    run: Row[Any],
    calls: list[Any],
    usage: dict[str, int],
    total: dict[str, int],
    started: float,
    inserts: list[tuple[Any, dict[str, Any]]],
) -> None:
    """Record the model's function calls and hand them to the client to execute."""
    pending = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in calls
    ]
    recorded = [p | {"function": p["function"] | {"output": None}} for p in pending]
    details = {"type": "tool_calls", "tool_calls": recorded}
    inserts.append((STEPS, _step(run, "tool_calls", details, created_at=started, status="in_progress", usage=usage)))
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": pending}}
    await finish(
        ctx,
        run,
        "requires_action",
        inserts=inserts,
        usage=total,
        required_action=action,
        expires_at=now() + ctx.settings.requires_action_expiry_seconds,
    )


async def finish(
    ctx: Context, run: Row[Any], status: str, inserts: list[tuple[Any, dict[str, Any]]] | None = None, **values: Any
) -> bool:
    """End the run (and insert `inserts`) only if we still own it in_progress; False if we lost it."""
    if status in ("completed", "incomplete"):
        values.setdefault("completed_at", now())
    values.setdefault("expires_at", None)
    async with ctx.engine.begin() as conn:
        result = await conn.execute(
            _mine(ctx, run.id, "in_progress").values(status=status, owner=None, lease_until=None, **values)
        )
        if result.rowcount != 1:
            await conn.rollback()
            log.info("run %s: no longer ours, dropping this attempt's result", run.id)
            return False
        for table, row in inserts or []:
            await conn.execute(INSERTS[table], row)
    return True


INSERTS = {MESSAGES: insert(MESSAGES), STEPS: insert(STEPS)}


async def fail(ctx: Context, run: Row[Any], code: str, message: str) -> None:
    log.warning("run %s failed: %s", run.id, message)
    await finish(ctx, run, "failed", failed_at=now(), last_error={"code": code, "message": message})


async def stop(ctx: Context, run_id: str) -> None:
    """After our task was cancelled: a cancelling run becomes cancelled; anything else is left alone."""
    async with ctx.engine.begin() as conn:
        await conn.execute(
            _mine(ctx, run_id, "cancelling").values(
                status="cancelled", cancelled_at=now(), owner=None, lease_until=None, expires_at=None
            )
        )


async def release(ctx: Context, run_id: str) -> bool:
    """Hand a run back to the queue (graceful shutdown); True if it should be re-enqueued."""
    async with ctx.engine.begin() as conn:
        result = await conn.execute(
            _mine(ctx, run_id, "in_progress").values(status="queued", owner=None, lease_until=None, enqueued_at=now())
        )
    if result.rowcount != 1:
        await stop(ctx, run_id)
    return bool(result.rowcount)
