"""A response's execution: claim it, build the request from its context, call the model, and
end it with one guarded write (core/store), then announce the end on its event log.

A plain response's log gets only its terminal event (its create waits for it); a streamed one
(background or not) gets every event, numbered on from the API's own. A background response
created without `stream` gets none (its end is polled for) and is executed as a plain one:
nobody can read its events (OpenAI, too, streams a background response again only if it was
created with `stream: true`).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import openai

from core.ids import now, seq
from core.responses import CONTEXT_TOO_LONG, wire_response
from core.store import ClaimedResponse, ResponseRow
from workers import metrics, tokens
from workers.context import Context, log
from workers.model_client import model_error, with_retries
from workers.responses import tools
from workers.responses.answer import Answer, streamed, whole
from workers.responses.output import Events, Output, orphans
from workers.responses.prompt import (
    ContextTooLong,
    chat_messages,
    fit,
    instructions,
    request_for,
    size,
    tools_of,
)
from workers.streaming import CutShort
from workers.tools.code_interpreter import ToolUnavailable

RELEASED = {"owner": None, "lease_until": None}
ENDS = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}  # finish_reason -> reason
MAX_ROUNDS = 20  # model rounds of one response: a model that never stops calling tools fails it


async def claim(ctx: Context, response_id: str) -> ClaimedResponse | None:
    """The response, now in_progress under our lease, with its context; None if not ours to run."""
    t = now()
    claimed = await ctx.store.claim_response(response_id, ctx.owner, t + ctx.settings.run_lease_seconds, t)
    if claimed is not None:
        r = claimed.response
        metrics.RUNS_STARTED.labels(metrics.model(r.model)).inc()
        metrics.QUEUE_WAIT.observe(max(0.0, t - (r.enqueued_at or r.created_at)))
    return claimed


async def publish(ctx: Context, response_id: str, events: list[tuple[str, str]]) -> None:
    """Append to the response's event log; a log that cannot be written never fails it."""
    try:
        await ctx.events.publish(response_id, events)
    except Exception:
        log.warning("response %s: could not publish %d event(s)", response_id, len(events), exc_info=True)


async def next_sequence(ctx: Context, response_id: str) -> int:
    """The sequence_number after the log's last event (the API's, or an earlier attempt's)."""
    last = await ctx.events.last_event(response_id)
    return 0 if last is None else int(json.loads(last[1]).get("sequence_number", -1)) + 1


def wire(response: ResponseRow, values: dict[str, Any]) -> dict[str, Any]:
    columns = dict(response._mapping) | values
    return wire_response(
        SimpleNamespace(**{("meta" if k == "metadata" else k): v for k, v in columns.items()})
    )


async def _logged(ctx: Context, response_id: str) -> list[tuple[str, str]]:
    """Every event the response's log holds, in order."""
    out: list[tuple[str, str]] = []
    after = "0"
    while batch := await ctx.events.read(response_id, after, 1):
        out += [(name, data) for _, name, data in batch]
        after = batch[-1][0]
    return out


async def start(ctx: Context, r: ResponseRow) -> Output:
    """The response's Output, its `in_progress` announced; after an attempt that was cut off,
    the items that one left open are closed first (as incomplete) and new ones numbered after."""
    if not r.stream:  # only a streamed response's events are read (live, or replayed later)
        return Output(0, False, built_in=frozenset(tools.specs(r)))
    logged = await _logged(ctx, r.id) if r.attempts > 1 else []
    last = logged[-1] if logged else await ctx.events.last_event(r.id)
    sequence = 0 if last is None else int(json.loads(last[1]).get("sequence_number", -1)) + 1
    earlier, left_open = orphans(logged)
    output = Output(sequence, True, earlier, frozenset(tools.specs(r)), r.include)
    events = [
        output.event("response.output_item.done", output_index=index, item=earlier[index])
        for index in left_open
    ]
    await publish(ctx, r.id, [*events, output.event("response.in_progress", response=wire(r, {}))])
    return output


async def execute(ctx: Context, claimed: ClaimedResponse) -> None:
    r = claimed.response
    output = await start(ctx, r)
    clients = ctx.clients
    endpoint, limit = clients.endpoint(r.model), clients.answer_limit(r.model, r.max_output_tokens)
    try:
        context = chat_messages(claimed.items, endpoint.null_content)
        fixed = instructions(r)
        # the answer's room, the instructions and the tool definitions come first
        budget = clients.context_window(r.model) - limit - sum(size(m, r.model) for m in fixed)
        budget -= len(json.dumps(tools_of(r))) // 4 if r.tools else 0
        messages = fixed + fit(context, budget, r.truncation, r.model)
    except ContextTooLong as exc:
        log.info("response %s: %s", r.id, exc)
        await fail(ctx, r, output, "invalid_prompt", CONTEXT_TOO_LONG)
        return
    client = clients.client(r.model)
    usage: list[dict[str, Any]] = []
    spent = 0  # built-in tool calls made, against max_tool_calls

    async def announce(events: Events) -> None:
        if output.announce and events:
            await publish(ctx, r.id, events)

    for round_number in range(MAX_ROUNDS):
        spare = r.max_tool_calls is None or spent < r.max_tool_calls
        request = request_for(r, messages, endpoint, limit, round_number == 0, spare)
        opened = len(output.slots)

        async def send(request: dict[str, Any] = request) -> Answer:
            if output.announce:
                return await streamed(client, request, output, announce, endpoint.stream_usage)
            return await whole(client, request, output)

        started = now()
        try:
            answer = await with_retries(
                send, endpoint, ctx.settings.model_max_retries, lambda: len(output.slots) == opened
            )
        except (openai.APIError, CutShort) as exc:
            code, message = model_error(exc)
            log.warning("response %s: model call failed: %s (%r)", r.id, message, exc)
            metrics.MODEL_ERRORS.labels(metrics.model(r.model), code).inc()
            await fail(ctx, r, output, code, message)
            return
        metrics.MODEL_LATENCY.labels(metrics.model(r.model)).observe(now() - started)
        usage.append(answer.usage)
        await tokens.spend(ctx, r.project, answer.usage)
        built_in = [s for s in output.calls.values() if s.item["type"] != "function_call"]
        if not built_in or answer.finish in INCOMPLETE:
            await complete(ctx, r, output, Answer(answer.finish, _sum(usage)))
            return
        text = "".join(output.message.chunks) if output.message is not None else ""
        calls, events = output.end_round()
        await announce(events)
        try:
            results, spent = await tools.run_round(ctx, r, output, calls, claimed.items, announce, spent)
        except ToolUnavailable as exc:
            await fail(ctx, r, output, "server_error", str(exc))
            return
        said = {
            "role": "assistant",
            "content": text or (None if endpoint.null_content else ""),
            "tool_calls": [tools.chat_call(s) for s in calls],
        }
        messages += [said, *results]
        if len(results) < len(calls):  # function calls: the client goes on from here
            await complete(ctx, r, output, Answer(answer.finish, _sum(usage)))
            return
    too_many = f"The model made more than {MAX_ROUNDS} rounds of built-in tool calls."
    await fail(ctx, r, output, "server_error", too_many)


def _sum(usage: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' token counts added up (all None if any round's are unknown)."""
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    if any(u.get(k) is None for u in usage for k in keys):
        return dict.fromkeys(keys)
    return {k: sum(u[k] for u in usage) for k in keys}


def _usage(answer: Answer) -> dict[str, Any] | None:
    u = answer.usage
    if u["prompt_tokens"] is None:
        return None
    return {
        "input_tokens": u["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": u["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u["total_tokens"],
    }


async def complete(ctx: Context, r: ResponseRow, output: Output, answer: Answer) -> None:
    reason = INCOMPLETE.get(answer.finish or "")
    incomplete = reason is not None
    items, events = output.close(incomplete)
    status = "incomplete" if incomplete else "completed"
    values: dict[str, Any] = {"status": status, "output": output.earlier + items, "usage": _usage(answer)}
    values |= RELEASED
    values |= {"incomplete_details": {"reason": reason}} if incomplete else {"completed_at": now()}
    t = now()
    rows = [
        {
            "id": item["id"],
            "project": r.project,
            "seq": 0,
            "created_at": t,
            "type": item["type"],
            "response_id": r.id,
            "output": True,
            "data": item,
        }
        for item in items
    ]
    await _end(ctx, r, output, values, rows, events)


async def fail(ctx: Context, r: ResponseRow, output: Output, code: str, message: str) -> None:
    # what the stream showed of it stays, closed as incomplete: the stream and the stored response agree
    items, events = output.close(incomplete=True)
    values = {
        "status": "failed",
        "output": output.earlier + items,
        "error": {"code": code, "message": message},
    }
    await _end(ctx, r, output, values | RELEASED, [], events)


async def _end(
    ctx: Context,
    r: ResponseRow,
    output: Output,
    values: dict[str, Any],
    rows: list[dict[str, Any]],
    events: list[tuple[str, str]],
) -> None:
    for row in rows:
        row["seq"] = seq()
    # marked before the write: housekeeping may see the end before this task resumes from it
    # (see workers/run_loop.finish)
    ctx.ended.add(r.id)
    written = False
    try:
        written = await ctx.store.finish_response(r.id, ctx.owner, values, rows, r.conversation_id)
    finally:
        if not written:
            ctx.ended.discard(r.id)
    if not written:
        log.info("response %s: no longer ours (cancelled, or taken over), dropping this attempt", r.id)
        return
    metrics.RUNS_FINISHED.labels(metrics.model(r.model), values["status"]).inc()
    events.append(output.event(ENDS[values["status"]], response=wire(r, values)))
    # shielded: the response is stored; its waiters must hear so, and a `store: false` one must
    # go, even if this task is cancelled now
    await asyncio.shield(_announce_end(ctx, r, events))


async def _announce_end(ctx: Context, r: ResponseRow, events: list[tuple[str, str]]) -> None:
    if r.stream or not r.background:  # a background response's end is polled for, not waited on
        await publish(ctx, r.id, events)
    if not r.store:
        await ctx.store.forget_response(r.id)


async def crashed(ctx: Context, r: ResponseRow, message: str) -> None:
    """End a response whose execution raised: failed, announced on its log."""
    announce = r.stream
    sequence = await next_sequence(ctx, r.id) if announce else 0
    await fail(ctx, r, Output(sequence, announce), "server_error", message)
