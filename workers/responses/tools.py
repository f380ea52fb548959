"""The built-in tools of a response (file_search, code_interpreter), run by the worker between
two model rounds: the model calls each as a function of its name, the call's item is filled and
closed here, and the model reads the result in its next round."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from core.ids import now
from core.models import VECTOR_STORES
from core.store import ResponseRow
from retrieval.catalog import touch
from retrieval.filters import parse
from retrieval.store import search
from workers.context import Context
from workers.responses import containers
from workers.responses.output import Events, Output, Slot
from workers.tools import code_interpreter, file_search

NAMES = ("code_interpreter", "file_search")
DEFAULT_RESULTS = 10  # OpenAI's default max_num_results for the Responses tool
Publish = Callable[[Events], Awaitable[None]]


def specs(r: ResponseRow) -> dict[str, Any]:
    """The response's built-in tools, by type."""
    return {t["type"]: t for t in r.tools or [] if t.get("type") in NAMES}


def definitions(r: ResponseRow) -> list[dict[str, Any]]:
    """A chat-completions function for each built-in tool."""
    out = []
    for kind in specs(r):
        out.append(code_interpreter.TOOL if kind == "code_interpreter" else file_search.file_search_tool())
    return out


async def run(
    ctx: Context,
    r: ResponseRow,
    output: Output,
    slot: Slot,
    context: list[dict[str, Any]],
    publish: Publish,
) -> str:
    """Run one built-in call, its item's events published as it goes; what the model reads back."""
    arguments = "".join(slot.chunks)
    spec = specs(r)[slot.name]
    if slot.name == "file_search":
        kind = "response.file_search_call"
        await publish(output.at(slot, f"{kind}.searching"))
        queries, results = await _search(ctx, r, spec, arguments)
        ordinal = len(output.citations.searches)
        output.citations.searches.append(results)
        item = slot.item | {"status": "completed", "queries": queries, "results": results}
        await publish(output.at(slot, f"{kind}.completed") + output.finish(slot, item))
        found = [(h["filename"], h["score"], h["text"]) for h in results]
        return file_search.excerpts(found, ordinal) if queries else "file_search needs a non-empty 'query'."
    code = code_interpreter.code_of(arguments)
    kind = "response.code_interpreter_call"
    await publish(
        output.at(slot, f"{kind}_code.delta", delta=code)
        + output.at(slot, f"{kind}_code.done", code=code)
        + output.at(slot, f"{kind}.interpreting")
    )
    ran = await containers.run_code(ctx, r, spec["container"], context + output_items(output), arguments)
    output.citations.files |= {path: (ran.container_id, cfile) for path, cfile in ran.files.items()}
    item = slot.item | {
        "status": ran.status,
        "code": code,
        "container_id": ran.container_id,
        "outputs": ran.outputs,
    }
    await publish(output.at(slot, f"{kind}.completed") + output.finish(slot, item))
    return ran.text


async def run_round(
    ctx: Context,
    r: ResponseRow,
    output: Output,
    calls: list[Slot],
    context: list[dict[str, Any]],
    publish: Publish,
    spent: int,
) -> tuple[list[dict[str, Any]], int]:
    """Run a round's built-in calls, in the model's order: the `tool` messages the model reads
    next, and how many built-in calls the response has made. Calls past max_tool_calls are
    closed `incomplete` and the model is told; function calls are left to the client."""
    results = []
    for slot in calls:
        if slot.item["type"] == "function_call":
            continue
        if r.max_tool_calls is not None and spent >= r.max_tool_calls:
            await publish(output.finish(slot, slot.item | {"status": "incomplete"}))
            read = f"[Not run: this response may make at most {r.max_tool_calls} built-in tool calls.]"
        else:
            spent += 1
            read = await run(ctx, r, output, slot, context, publish)
        results.append({"role": "tool", "tool_call_id": slot.call_id, "content": read})
    return results, spent


def chat_call(slot: Slot) -> dict[str, Any]:
    """A call of the round as the chat-completions exchange replays it."""
    arguments = "".join(slot.chunks)
    return {"id": slot.call_id, "type": "function", "function": {"name": slot.name, "arguments": arguments}}


def output_items(output: Output) -> list[dict[str, Any]]:
    """This response's items so far (an earlier call's container is reused by the next)."""
    return output.earlier + [s.item for s in output.slots]


async def _search(
    ctx: Context, r: ResponseRow, spec: dict[str, Any], arguments: str
) -> tuple[list[str], list[dict[str, Any]]]:
    limit = ctx.settings.search_query_max_chars
    queries = [q[:limit] for q in file_search.queries_of(arguments)]  # the model's query: cut, not refused
    if not queries:
        return [], []
    async with ctx.engine.connect() as conn:
        query = select(VECTOR_STORES).where(
            VECTOR_STORES.c.id.in_(spec.get("vector_store_ids") or []), VECTOR_STORES.c.project == r.project
        )
        t = now()
        stores = [s for s in (await conn.execute(query)).all() if s.expires_at is None or s.expires_at > t]
    if not stores:
        return queries, []
    await file_search.ready(ctx.engine, stores)
    ranking = spec.get("ranking_options") or {}
    hybrid = ranking.get("hybrid_search")
    alpha = None
    if hybrid:
        alpha = hybrid["embedding_weight"] / (hybrid["embedding_weight"] + hybrid["text_weight"])
    filters = spec.get("filters")
    hits = await search(
        ctx.engine,
        ctx.settings,
        stores,
        queries,
        int(spec.get("max_num_results") or DEFAULT_RESULTS),
        parse(filters) if filters else None,
        float(ranking.get("score_threshold") or 0.0),
        alpha,
    )
    async with ctx.engine.begin() as conn:
        for store in stores:
            await touch(conn, store)
    results = [
        {
            "file_id": h.file_id,
            "filename": h.filename,
            "score": h.score,
            "text": h.text,
            "attributes": h.attributes,
        }
        for h in hits
    ]
    return queries, results
