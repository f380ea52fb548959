"""The run loop: claim, build the prompt, call the model, write the outcome exactly once.

Every write that ends a round goes through the run store (core/store), guarded by
`owner = me AND status = ...`: if the lease lapsed and another worker took the run over,
the guard fails and nothing of this attempt is written, so each model turn leaves exactly one
message. The loop never asks which database it is on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai

from core.ids import now
from core.models import RUNS, Run, wire_of
from core.store import Claimed, Inserts, RunRow
from workers import images, metrics, tokens
from workers.context import CANCELLED, Context, log, publish
from workers.model_client import model_error, with_retries
from workers.outcome import Outcome
from workers.prompt import PromptTooLong, build_prompt, request_for
from workers.streaming import CutShort, Turn, TurnIds, abandoned, orphans, stream_turn
from workers.tools.dispatch import ToolUnavailable, annotations_of, builtin_tools, pending_images, run_tool

__all__ = [
    "CANCELLED",
    "Claimed",
    "Context",
    "claim",
    "execute",
    "fail",
    "finish",
    "publish",
    "release",
    "stop",
]

RELEASED = {"owner": None, "lease_until": None}
MAX_ROUNDS = 50  # built-in tool rounds one claim runs before giving up: a model that never stops calling


def _chars(ctx: Context, run: RunRow) -> int:
    """How much of the thread's newest content a prompt for `run` could ever hold."""
    return 4 * ctx.clients.context_window(run.model) + 4096


async def claim(ctx: Context, run_id: str) -> Claimed | None:
    """Atomically move a queued run to in_progress under our lease, with its thread's messages.

    None if the run is not ours to execute (someone else has it, or it is over).
    """
    t = now()
    claimed, cancelled = await ctx.store.claim_run(
        run_id, ctx.owner, t + ctx.settings.run_lease_seconds, t, lambda r: _chars(ctx, r)
    )
    if claimed is None:
        if cancelled is not None and cancelled.stream:
            await publish(
                ctx, cancelled, [("thread.run.cancelled", wire_of(Run, cancelled._mapping).model_dump_json())]
            )
        return None
    run = claimed.run
    metrics.RUNS_STARTED.labels(metrics.model(run.model)).inc()
    metrics.QUEUE_WAIT.observe(max(0.0, t - (run.enqueued_at or run.created_at)))
    return claimed


async def execute(ctx: Context, claimed: Claimed) -> None:
    """Model rounds for a claimed run until it ends completed, incomplete, failed or
    requires_action. Rounds whose tool calls the worker runs itself (code_interpreter,
    file_search) are recorded and followed by the next round at once."""
    run = claimed.run
    if run.stream:
        # attempts > 1: an earlier worker may have died half-way through a streamed round
        closing = await orphans(ctx.events, run.id) if run.attempts > 1 else []
        await publish(
            ctx, run, closing + [("thread.run.in_progress", wire_of(Run, run._mapping).model_dump_json())]
        )
    for _ in range(MAX_ROUNDS):
        following = await model_round(ctx, claimed)
        if following is None:
            return
        claimed = following
    await fail(
        ctx,
        claimed.run,
        "server_error",
        f"The run made more than {MAX_ROUNDS} rounds of code_interpreter or file_search calls.",
    )


async def model_round(ctx: Context, claimed: Claimed) -> Claimed | None:
    """One model round; the run as it stands after it when another round must follow."""
    run = claimed.run
    clients = ctx.clients
    limit = clients.answer_limit(run.model, run.max_completion_tokens)
    endpoint = clients.endpoint(run.model)
    shown = await images.for_thread(ctx, run.project, claimed.thread, endpoint.vision)
    try:
        prompt = build_prompt(
            run,
            claimed.thread,
            claimed.steps,
            clients.context_window(run.model),
            limit,
            null_content=endpoint.null_content,
            images=shown,
            vision=endpoint.vision,
        )
    except PromptTooLong as exc:
        if run.max_prompt_tokens:
            await finish(
                ctx, run, "incomplete", completed_at=now(), incomplete_details={"reason": "max_prompt_tokens"}
            )
        else:
            await fail(ctx, run, "invalid_prompt", f"The prompt is too long for {run.model}: {exc}.")
        return None
    started, ids = now(), TurnIds()
    ids.images = pending_images(run, claimed)
    turn = await call_model(ctx, claimed, prompt, limit, ids, started)
    if turn is None:
        return None
    executed = await run_tools(ctx, claimed, turn, ids, started)
    if executed is None:
        return None
    extras = {"images": ids.images, "annotations": await annotations_of(ctx, run, claimed, turn.text)}
    outcome = Outcome.of(
        run, turn, started, ids, ctx.settings.requires_action_expiry_seconds, executed, extras
    )
    recorded = await finish(
        ctx,
        run,
        outcome.status,
        inserts=outcome.rows,
        announce=lambda _: outcome.events(run, ids, started),
        **outcome.values,
    )
    if outcome.status != "in_progress" or not recorded:
        return None
    return await reload(ctx, run.id)


async def call_model(
    ctx: Context, claimed: Claimed, prompt: list[dict[str, Any]], limit: int, ids: TurnIds, started: float
) -> Turn | None:
    """The model's answer to `prompt` (streamed as it comes for a streaming run); None if the
    call failed and the run with it."""
    run, builtin = claimed.run, builtin_tools(claimed.run)
    client, endpoint = ctx.clients.client(run.model), ctx.clients.endpoint(run.model)
    request = request_for(
        run, prompt, endpoint, limit, first_round=not any(s.type == "tool_calls" for s in claimed.steps)
    )

    async def send() -> Turn:
        if run.stream:
            return await stream_turn(
                client,
                request,
                run,
                ids,
                started,
                lambda ev: publish(ctx, run, ev),
                builtin,
                usage=endpoint.stream_usage,
            )
        # `post` skips the SDK's parameter transformation (the body is already wire-shaped);
        # `object` returns the answer's JSON as it came
        return Turn.of(await client.post("/chat/completions", body=request, cast_to=object))

    try:
        # a streamed answer already partly published is not asked for again
        turn = await with_retries(send, endpoint, ctx.settings.model_max_retries, lambda: not ids.announced)
    except asyncio.CancelledError as exc:
        # Only a user's cancel closes the round here; a run handed back or taken over is closed
        # by its next attempt (see streaming.orphans), which knows how it ended.
        if run.stream and ids.announced and exc.args == (CANCELLED,):
            await publish(ctx, run, abandoned(run, ids, started, cancelled=True, error=None))
        raise
    except (openai.APIError, CutShort) as exc:
        code, message = model_error(exc)
        log.warning("run %s: model call failed: %s (%r)", run.id, message, exc)
        metrics.MODEL_ERRORS.labels(metrics.model(run.model), code).inc()
        if run.stream and ids.announced:
            error = {"code": code, "message": message}
            await publish(ctx, run, abandoned(run, ids, started, cancelled=False, error=error))
        await fail(ctx, run, code, message)
        return None
    except Exception:
        if run.stream and ids.announced:
            error = {"code": "server_error", "message": "The model's answer could not be read."}
            await publish(ctx, run, abandoned(run, ids, started, cancelled=False, error=error))
        raise  # the runner fails the run
    model = metrics.model(run.model)
    metrics.MODEL_LATENCY.labels(model).observe(now() - started)
    if turn.usage["prompt_tokens"] is not None:
        metrics.TOKENS.labels(model, "prompt").inc(turn.usage["prompt_tokens"])
        metrics.TOKENS.labels(model, "completion").inc(turn.usage["completion_tokens"])
    await tokens.spend(ctx, run.project, turn.usage)
    for call in turn.calls:
        metrics.TOOL_CALLS.labels(call["name"] if call["name"] in builtin else "function", "requested").inc()
    return turn


async def run_tools(
    ctx: Context, claimed: Claimed, turn: Turn, ids: TurnIds, started: float
) -> dict[str, dict[str, Any]] | None:
    """Run the round's built-in calls; their recorded calls by id. None if a tool could not run
    (the run failed, saying why)."""
    run, builtin = claimed.run, builtin_tools(claimed.run)
    executed: dict[str, dict[str, Any]] = {}
    if Outcome.cut_short(run, turn) is not None:  # a round cut short records no calls: none are run
        return executed
    ours = [c for c in turn.calls if c["name"] in builtin]
    first = len(turn.calls) - len(ours)  # the step lists the function calls first
    try:
        for index, call in enumerate(ours, start=first):
            executed[call["id"]] = await run_tool(ctx, run, claimed, call, index, ids.tools_step)
    except asyncio.CancelledError as exc:
        if run.stream and exc.args == (CANCELLED,):
            await publish(ctx, run, abandoned(run, ids, started, cancelled=True, error=None))
        raise
    except Exception as exc:
        if run.stream:
            error = {"code": "server_error", "message": str(exc) or type(exc).__name__}
            await publish(ctx, run, abandoned(run, ids, started, cancelled=False, error=error))
        if not isinstance(exc, ToolUnavailable):
            raise  # the runner fails the run
        await fail(ctx, run, "server_error", str(exc))
        return None
    return executed


async def reload(ctx: Context, run_id: str) -> Claimed | None:
    """The run, its thread and its steps as they stand, for the next round of a run we own."""
    claimed = await ctx.store.reload_run(run_id, ctx.owner, lambda r: _chars(ctx, r))
    if claimed is None:
        await stop(ctx, run_id)  # cancelled between two rounds: finish the cancel now
    return claimed


async def finish(
    ctx: Context,
    run: RunRow,
    status: str,
    inserts: Inserts | None = None,
    announce: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
    **values: Any,
) -> bool:
    """End the run (and insert `inserts`) only if we still own it in_progress; False if we lost it.

    A streaming run then announces it: `announce(final run columns)` events, and the run's own
    `thread.run.<status>` last."""
    continuing = status == "in_progress"  # a round of built-in tool calls: the run goes on with us
    if not continuing:
        values |= RELEASED | {"expires_at": values.get("expires_at")}
        # Marked before the write, not after: housekeeping may see the end committed before this
        # task resumes from the write, and a task it stopped there would never announce the end.
        ctx.ended.add(run.id)
    written = False
    try:
        written = await ctx.store.finish(RUNS, run.id, ctx.owner, {"status": status} | values, inserts or [])
    finally:
        if not written:
            ctx.ended.discard(run.id)
    if not written:
        log.info("run %s: no longer ours, dropping this attempt's result", run.id)
        await stop(ctx, run.id)  # cancelled meanwhile: finish the cancel ourselves
        return False
    if not continuing:
        metrics.RUNS_FINISHED.labels(metrics.model(run.model), status).inc()
    if status not in ("requires_action", "in_progress"):
        metrics.RUN_DURATION.labels(metrics.model(run.model)).observe(max(0.0, now() - run.created_at))
    if run.stream:
        final = dict(run._mapping) | {"status": status} | values
        events = announce(final) if announce else []
        if not continuing:
            events.append((f"thread.run.{status}", wire_of(Run, final).model_dump_json()))
        # shielded: the run is committed; its stream must hear so even if this task is cancelled now
        await asyncio.shield(publish(ctx, run, events))
    elif not continuing:  # a poll waiting on the run (api/polls.py) hears of the end at once
        await asyncio.shield(publish(ctx, run, [(f"thread.run.{status}", "{}")]))
    return True


async def fail(ctx: Context, run: RunRow, code: str, message: str) -> None:
    log.warning("run %s failed: %s", run.id, message)
    await finish(ctx, run, "failed", failed_at=now(), last_error={"code": code, "message": message})


async def stop(ctx: Context, run_id: str) -> None:
    """After our task was cancelled: a cancelling run becomes cancelled; anything else is left alone."""
    values = {"status": "cancelled", "cancelled_at": now(), "expires_at": None} | RELEASED
    ctx.ended.add(run_id)  # before the write (see finish): housekeeping must not interrupt the announcement
    row = None
    try:
        row = await ctx.store.stop(RUNS, run_id, ctx.owner, values)
    finally:
        if row is None:
            ctx.ended.discard(run_id)
    if row is not None:  # the stream's last event, or a waiting poll's signal
        data = wire_of(Run, row._mapping).model_dump_json() if row.stream else "{}"
        await publish(ctx, row, [("thread.run.cancelled", data)])


async def release(ctx: Context, run_id: str) -> bool:
    """Hand a run back to the queue (graceful shutdown); True if it should be re-enqueued."""
    released = await ctx.store.release(
        RUNS, run_id, ctx.owner, {"status": "queued", "enqueued_at": now()} | RELEASED
    )
    if not released:
        await stop(ctx, run_id)
    return released
