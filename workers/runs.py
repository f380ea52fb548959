"""The run loop: claim, build the prompt, call the model, write the outcome exactly once.

Every write that ends a turn is one transaction guarded by `owner = me AND status = ...`:
if the lease lapsed and another worker took the run over, the guard fails and nothing of
this attempt is written, so each model turn leaves exactly one message.

This is the hot path of every run, so it speaks SQLAlchemy Core (no ORM unit of work).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from sqlalchemy import Row, Text, bindparam, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.events import EventLog
from core.ids import now
from core.models import MESSAGES, RUNS, STEPS, Run, wire_of
from core.storage import Storage
from workers import metrics
from workers.chat import model_error, request_for, with_retries
from workers.models import ModelClients
from workers.pg import Postgres
from workers.prompt import PromptTooLong, build_prompt
from workers.streaming import CutShort, Turn, TurnIds, abandoned, orphans, stream_turn
from workers.tools import (
    ToolUnavailable,
    annotations,
    builtin_tools,
    pending_images,
    run_tool,
)
from workers.turns import Outcome

log = logging.getLogger("assistd.worker")


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    clients: ModelClients
    owner: str
    events: EventLog
    storage: Storage | None = None  # file bytes, for the tools that read or write files
    sandboxes: Any = None  # sandbox.Sandboxes where code_interpreter can run
    pg: Postgres | None = None  # the claim and a round's end straight on asyncpg (PostgreSQL only)
    # runs whose own task has committed their end and may still be announcing it: not to be stopped
    ended: set[str] = field(default_factory=set)


CANCELLED = "cancelled by the user"  # the reason a task is cancelled with when its run was cancelled
RELEASED = {"owner": None, "lease_until": None}
MAX_ROUNDS = 50  # built-in tool rounds one claim runs before giving up: a model that never stops calling


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
        started_at=func.coalesce(_c.started_at, bindparam("t")),
        attempts=_c.attempts + 1,
    )
    .returning(*RUNS.c)
)
CANCEL_QUEUED = (
    update(RUNS)
    .where(_c.id == bindparam("run_id"), _c.status == "cancelling", _c.owner.is_(None))
    .values(status="cancelled", cancelled_at=bindparam("t"), expires_at=None)
    .returning(*RUNS.c)
)
_m = MESSAGES.c
_size = func.length(cast(_m.content, Text))
# The thread's newest messages whose newer neighbours hold fewer than `chars` characters of
# content: older ones could never fit the prompt (a token is at least about four characters), so
# a round never loads a long thread whole.
_newest = (
    select(_m.id, _m.seq, _m.role, _m.content, _m.run_id, _m.attachments,
           (func.sum(_size).over(order_by=_m.seq.desc()) - _size).label("newer"))
    .where(_m.thread_id == bindparam("thread_id"))
    .subquery()
)
THREAD = (
    select(_newest.c.id, _newest.c.role, _newest.c.content, _newest.c.run_id, _newest.c.attachments)
    .where(_newest.c.newer <= bindparam("chars"))
    .order_by(_newest.c.seq)
)
INSERTS = {MESSAGES: insert(MESSAGES), STEPS: insert(STEPS)}
ROUNDS = (
    select(STEPS.c.type, STEPS.c.step_details).where(STEPS.c.run_id == bindparam("run_id")).order_by(STEPS.c.seq)
)


def _chars(ctx: Context, run: Any) -> int:
    """How much of the thread's newest content a prompt for `run` could ever hold."""
    return 4 * ctx.clients.context_window(run.model) + 4096


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
    lease = t + ctx.settings.run_lease_seconds
    if ctx.pg is not None:
        run, cancelled, thread, steps = await ctx.pg.claim(run_id, ctx.owner, lease, t, lambda r: _chars(ctx, r))
    else:
        async with ctx.engine.begin() as conn:
            run = (await conn.execute(CLAIM, {"run_id": run_id, "owner": ctx.owner, "lease_until": lease, "t": t})).first()
            if run is None:
                # a run cancelled while queued is finished off by whoever receives its id
                cancelled = (await conn.execute(CANCEL_QUEUED, {"run_id": run_id, "t": t})).first()
            else:
                thread = list((await conn.execute(THREAD, {"thread_id": run.thread_id, "chars": _chars(ctx, run)})).all())
                # usage is set once a round has been recorded: only then are there steps to replay
                steps = list((await conn.execute(ROUNDS, {"run_id": run_id})).all()) if run.usage else []
    if run is not None:
        metrics.RUNS_STARTED.labels(metrics.model(run.model)).inc()
        metrics.QUEUE_WAIT.observe(max(0.0, t - (run.enqueued_at or run.created_at)))
    if run is None:
        if cancelled is not None and cancelled.stream:
            await publish(ctx, cancelled, [("thread.run.cancelled", wire_of(Run, cancelled._mapping).model_dump_json())])
        return None
    return Claimed(run, thread, steps)


async def execute(ctx: Context, claimed: Claimed) -> None:
    """Model rounds for a claimed run until it ends completed, incomplete, failed or
    requires_action. Rounds whose tool calls the worker runs itself (code_interpreter,
    file_search) are recorded and followed by the next round at once."""
    run = claimed.run
    if run.stream:
        # attempts > 1: an earlier worker may have died half-way through a streamed round
        closing = await orphans(ctx.events, run.id) if run.attempts > 1 else []
        await publish(ctx, run, closing + [("thread.run.in_progress", wire_of(Run, run._mapping).model_dump_json())])
    next_round: Claimed | None = claimed
    for _ in range(MAX_ROUNDS):
        next_round = await model_round(ctx, next_round)
        if next_round is None:
            return
    await fail(ctx, next_round.run, "server_error",
               f"The run made more than {MAX_ROUNDS} rounds of code_interpreter or file_search calls.")


async def model_round(ctx: Context, claimed: Claimed) -> Claimed | None:
    """One model round; the run as it stands after it when another round must follow."""
    run = claimed.run
    clients = ctx.clients
    limit = clients.answer_limit(run.model, run.max_completion_tokens)
    try:
        prompt = build_prompt(run, claimed.thread, claimed.steps, clients.context_window(run.model), limit,
                              null_content=clients.endpoint(run.model).null_content)
    except PromptTooLong as exc:
        if run.max_prompt_tokens:
            await finish(ctx, run, "incomplete", completed_at=now(), incomplete_details={"reason": "max_prompt_tokens"})
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
    extras = {"images": ids.images, "annotations": await annotations(ctx, run, claimed, turn.text)}
    outcome = Outcome.of(run, turn, started, ids, ctx.settings.requires_action_expiry_seconds, executed, extras)
    recorded = await finish(ctx, run, outcome.status, inserts=outcome.rows,
                            announce=lambda _: outcome.events(run, ids, started), **outcome.values)
    if outcome.status != "in_progress" or not recorded:
        return None
    return await reload(ctx, run.id)


async def call_model(ctx: Context, claimed: Claimed, prompt: list[dict[str, Any]], limit: int, ids: TurnIds,
                     started: float) -> Turn | None:
    """The model's answer to `prompt` (streamed as it comes for a streaming run); None if the
    call failed and the run with it."""
    run, builtin = claimed.run, builtin_tools(claimed.run)
    client, endpoint = ctx.clients.client(run.model), ctx.clients.endpoint(run.model)
    request = request_for(run, prompt, endpoint, limit,
                          first_round=not any(s.type == "tool_calls" for s in claimed.steps))

    async def send() -> Turn:
        if run.stream:
            return await stream_turn(client, request, run, ids, started, lambda ev: publish(ctx, run, ev), builtin,
                                     usage=endpoint.stream_usage)
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
    for call in turn.calls:
        metrics.TOOL_CALLS.labels(call["name"] if call["name"] in builtin else "function", "requested").inc()
    return turn


async def run_tools(ctx: Context, claimed: Claimed, turn: Turn, ids: TurnIds,
                    started: float) -> dict[str, dict[str, Any]] | None:
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
    async with ctx.engine.connect() as conn:
        run = (await conn.execute(select(RUNS).where(RUNS.c.id == run_id, RUNS.c.owner == ctx.owner,
                                                     RUNS.c.status == "in_progress"))).first()
        if run is not None:
            thread = list((await conn.execute(THREAD, {"thread_id": run.thread_id, "chars": _chars(ctx, run)})).all())
            steps = list((await conn.execute(ROUNDS, {"run_id": run_id})).all())
    if run is None:
        await stop(ctx, run_id)  # cancelled between two rounds: finish the cancel now
        return None
    return Claimed(run, thread, steps)


async def publish(ctx: Context, run: Any, events: list[tuple[str, str]]) -> None:
    """Append to the run's event log; a log that cannot be written never fails the run."""
    try:
        await ctx.events.publish(run.id, events)
    except Exception:
        log.warning("run %s: could not publish %d event(s)", run.id, len(events), exc_info=True)


async def finish(
    ctx: Context,
    run: Row[Any],
    status: str,
    inserts: list[tuple[Any, dict[str, Any]]] | None = None,
    announce: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
    **values: Any,
) -> bool:
    """End the run (and insert `inserts`) only if we still own it in_progress; False if we lost it.

    A streaming run then announces it: `announce(final run columns)` events, and the run's own
    `thread.run.<status>` last."""
    continuing = status == "in_progress"  # a round of built-in tool calls: the run goes on with us
    if not continuing:
        values |= RELEASED | {"expires_at": values.get("expires_at")}
    if ctx.pg is not None:
        lost = not await ctx.pg.finish(run.id, ctx.owner, {"status": status} | values, inserts or [])
    else:
        async with ctx.engine.begin() as conn:
            result = await conn.execute(_mine(ctx, run.id, "in_progress").values(status=status, **values))
            lost = result.rowcount != 1
            if lost:
                await conn.rollback()
            else:
                for table, row in inserts or []:
                    await conn.execute(INSERTS[table], row)
    if not lost and not continuing:
        ctx.ended.add(run.id)
    if lost:
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
    return True


async def fail(ctx: Context, run: Row[Any], code: str, message: str) -> None:
    log.warning("run %s failed: %s", run.id, message)
    await finish(ctx, run, "failed", failed_at=now(), last_error={"code": code, "message": message})


async def stop(ctx: Context, run_id: str) -> None:
    """After our task was cancelled: a cancelling run becomes cancelled; anything else is left alone."""
    async with ctx.engine.begin() as conn:
        row = (
            await conn.execute(
                _mine(ctx, run_id, "cancelling")
                .values(status="cancelled", cancelled_at=now(), expires_at=None, **RELEASED)
                .returning(*RUNS.c)
            )
        ).first()
    if row is not None:
        ctx.ended.add(run_id)  # housekeeping must not interrupt the announcement below
    if row is not None and row.stream:
        await publish(ctx, row, [("thread.run.cancelled", wire_of(Run, row._mapping).model_dump_json())])


async def release(ctx: Context, run_id: str) -> bool:
    """Hand a run back to the queue (graceful shutdown); True if it should be re-enqueued."""
    async with ctx.engine.begin() as conn:
        result = await conn.execute(
            _mine(ctx, run_id, "in_progress").values(status="queued", enqueued_at=now(), **RELEASED)
        )
    if result.rowcount != 1:
        await stop(ctx, run_id)
    return bool(result.rowcount)
