"""The run loop: claim, build the prompt, call the model, write the outcome exactly once.

Every write that ends a turn is one transaction guarded by `owner = me AND status = ...`:
if the lease lapsed and another worker took the run over, the guard fails and nothing of
this attempt is written, so each model turn leaves exactly one message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import openai
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import Settings
from core.ids import now
from core.models import Message, Run, RunStep
from workers.models import ModelClients
from workers.prompt import PromptTooLong, build_prompt

log = logging.getLogger("assistd.worker")


@dataclass
class Context:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clients: ModelClients
    owner: str


def _mine(ctx: Context, run_id: str, *statuses: str) -> Any:
    return update(Run).where(col(Run.id) == run_id, col(Run.owner) == ctx.owner, col(Run.status).in_(statuses))


async def claim(ctx: Context, run_id: str) -> Run | None:
    """Atomically move a queued run to in_progress under our lease; None if someone else has it."""
    t = now()
    async with ctx.sessions() as s:
        stmt = (
            update(Run)
            .where(col(Run.id) == run_id, col(Run.status) == "queued")
            .values(
                status="in_progress",
                owner=ctx.owner,
                lease_until=t + ctx.settings.run_lease_seconds,
                started_at=t,
                attempts=col(Run.attempts) + 1,
            )
            .returning(Run)
        )
        run = (await s.exec(stmt)).scalar_one_or_none()  # type: ignore[call-overload]
        if run is None:
            # a run cancelled while queued is finished off by whoever receives its id
            await s.exec(  # type: ignore[call-overload]
                update(Run)
                .where(col(Run.id) == run_id, col(Run.status) == "cancelling", col(Run.owner).is_(None))
                .values(status="cancelled", cancelled_at=t, expires_at=None)
            )
        await s.commit()
        return run  # type: ignore[no-any-return]


async def execute(ctx: Context, run: Run) -> None:
    """One model turn for a claimed run, ending in completed, incomplete or failed."""
    async with ctx.sessions() as s:
        thread = list(
            (await s.exec(select(Message).where(Message.thread_id == run.thread_id).order_by(col(Message.seq)))).all()
        )
    try:
        prompt = build_prompt(run, thread, ctx.clients.context_window(run.model))
    except PromptTooLong as exc:
        if run.max_prompt_tokens:
            await finish(ctx, run, "incomplete", incomplete_details={"reason": "max_prompt_tokens"})
        else:
            await fail(ctx, run, "invalid_prompt", f"The prompt is too long for {run.model}: {exc}.")
        return
    started = now()
    try:
        completion = await ctx.clients.client(run.model).chat.completions.create(**request_for(run, prompt.messages))
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


def request_for(run: Run, messages: list[dict[str, Any]]) -> dict[str, Any]:
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
    return req


def _usage(completion: Any) -> dict[str, int]:
    u = completion.usage
    if u is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}


async def record_turn(ctx: Context, run: Run, completion: Any, started: float) -> None:
    """Write the assistant message, its message_creation step and the run's end, in one transaction."""
    choice = completion.choices[0]
    usage = _usage(completion)
    t = now()
    reason = None
    if choice.finish_reason == "length":
        reason = "max_completion_tokens"
    elif run.max_prompt_tokens and usage["prompt_tokens"] > run.max_prompt_tokens:
        reason = "max_prompt_tokens"
    message = Message(
        project=run.project,
        thread_id=run.thread_id,
        created_at=started,
        role="assistant",
        content=[{"type": "text", "text": {"value": choice.message.content or "", "annotations": []}}],
        attachments=[],
        assistant_id=run.assistant_id,
        run_id=run.id,
        status="incomplete" if reason else "completed",
        completed_at=None if reason else t,
        incomplete_at=t if reason else None,
        incomplete_details={"reason": "max_tokens"} if reason else None,
    )
    step = RunStep(
        project=run.project,
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        created_at=started,
        type="message_creation",
        status="completed",
        step_details={"type": "message_creation", "message_creation": {"message_id": message.id}},
        usage=usage,
        completed_at=t,
    )
    status = "incomplete" if reason else "completed"
    extra = {"incomplete_details": {"reason": reason}} if reason else {}
    await finish(ctx, run, status, usage=usage, completed_at=t, rows=[message, step], **extra)


async def finish(ctx: Context, run: Run, status: str, rows: list[Any] | None = None, **values: Any) -> bool:
    """End the run (and add `rows`) only if we still own it in_progress; False if we lost it."""
    if status in ("completed", "incomplete"):
        values.setdefault("completed_at", now())
    async with ctx.sessions() as s:
        result = await s.exec(  # type: ignore[call-overload]
            _mine(ctx, run.id, "in_progress").values(
                status=status, owner=None, lease_until=None, expires_at=None, **values
            )
        )
        if result.rowcount != 1:
            await s.rollback()
            log.info("run %s: no longer ours, dropping this attempt's result", run.id)
            return False
        s.add_all(rows or [])
        await s.commit()
    return True


async def fail(ctx: Context, run: Run, code: str, message: str) -> None:
    log.warning("run %s failed: %s", run.id, message)
    await finish(ctx, run, "failed", failed_at=now(), last_error={"code": code, "message": message})


async def stop(ctx: Context, run_id: str) -> None:
    """After our task was cancelled: a cancelling run becomes cancelled; anything else is left alone."""
    async with ctx.sessions() as s:
        await s.exec(  # type: ignore[call-overload]
            _mine(ctx, run_id, "cancelling").values(
                status="cancelled", cancelled_at=now(), owner=None, lease_until=None, expires_at=None
            )
        )
        await s.commit()


async def release(ctx: Context, run_id: str) -> bool:
    """Hand a run back to the queue (graceful shutdown); True if it should be re-enqueued."""
    async with ctx.sessions() as s:
        result = await s.exec(  # type: ignore[call-overload]
            _mine(ctx, run_id, "in_progress").values(status="queued", owner=None, lease_until=None, enqueued_at=now())
        )
        await s.commit()
    if result.rowcount != 1:
        await stop(ctx, run_id)
    return bool(result.rowcount)
