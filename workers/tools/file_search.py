"""The file_search tool of runs: the model calls it as a function, the worker searches the vector
stores of the run's thread and assistant, and the model reads back numbered excerpts whose
markers (`【0:1†notes.md】`) it copies into its answer; workers/citations.py turns those into
file_citation annotations."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.ids import now
from core.models import ASSISTANTS, THREADS, VECTOR_STORE_FILES, VECTOR_STORES
from core.store import RunRow
from retrieval.catalog import touch
from retrieval.store import search

RANKER = "default_2024_08_21"
DEFAULT_RESULTS = 20
MAX_QUERIES = 5
READY_WAIT_SECONDS = 60.0  # past this, search what is ready (the run's own time budget is longer)


def file_search_tool() -> dict[str, Any]:
    """The chat-completions function the model calls to search."""
    return {
        "type": "function",
        "function": {
            "name": "file_search",
            "description": (
                "Search the files the user uploaded or attached for passages relevant to a query. Use it whenever "
                "the answer may be in those files. Results come back as numbered excerpts: cite an excerpt by "
                "copying its marker, e.g. 【0:1†notes.md】, right after the sentence that uses it."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What to look for, as a full question or phrase.",
                    },
                    "queries": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Several phrasings or sub-questions to search at once (optional).",
                    },
                },
                "required": ["query"],
            },
        },
    }


def queries_of(arguments: str) -> list[str]:
    """The model's queries: `{"query": ...}` and/or `{"queries": [...]}` (or a bare string)."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        return [arguments.strip()] if arguments.strip() else []
    if isinstance(args, str):
        args = {"query": args}
    if not isinstance(args, dict):
        return []
    found = [args.get("query")] + list(args.get("queries") or [])
    return list(dict.fromkeys(q.strip() for q in found if isinstance(q, str) and q.strip()))[:MAX_QUERIES]


def _options(run: RunRow) -> tuple[int, float]:
    for tool in run.tools or []:
        if tool.get("type") in ("file_search", "retrieval"):
            spec = tool.get("file_search") or {}
            threshold = (spec.get("ranking_options") or {}).get("score_threshold") or 0.0
            return int(spec.get("max_num_results") or DEFAULT_RESULTS), float(threshold)
    return DEFAULT_RESULTS, 0.0


def _store_ids(*resources: Any) -> list[str]:
    ids: list[str] = []
    for res in resources:
        ids += ((res or {}).get("file_search") or {}).get("vector_store_ids") or []
    return list(dict.fromkeys(ids))


async def _stores(engine: AsyncEngine, run: RunRow) -> list[Any]:
    """The run's usable vector stores: its thread's and its assistant's (expired ones are skipped)."""
    async with engine.connect() as conn:
        thread = (
            await conn.execute(select(THREADS.c.tool_resources).where(THREADS.c.id == run.thread_id))
        ).first()
        assistant = (
            await conn.execute(select(ASSISTANTS.c.tool_resources).where(ASSISTANTS.c.id == run.assistant_id))
        ).first()
        ids = _store_ids(
            getattr(run, "tool_resources", None), thread and thread[0], assistant and assistant[0]
        )
        if not ids:
            return []
        rows = (
            await conn.execute(
                select(VECTOR_STORES).where(
                    VECTOR_STORES.c.id.in_(ids), VECTOR_STORES.c.project == run.project
                )
            )
        ).all()
    t = now()
    return [r for r in rows if r.expires_at is None or r.expires_at > t]


async def ready(engine: AsyncEngine, stores: list[Any]) -> None:
    """Wait (a bounded while) for files still being ingested: a message's attachments are added
    to the thread's store as the run starts, and OpenAI's runs likewise wait for them."""
    deadline = now() + READY_WAIT_SECONDS
    ids = [s.id for s in stores]
    while now() < deadline:
        async with engine.connect() as conn:
            busy = (
                await conn.execute(
                    select(func.count())
                    .select_from(VECTOR_STORE_FILES)
                    .where(
                        VECTOR_STORE_FILES.c.vector_store_id.in_(ids),
                        VECTOR_STORE_FILES.c.status == "in_progress",
                    )
                )
            ).scalar()
        if not busy:
            return
        await asyncio.sleep(0.2)


def model_output(call: dict[str, Any], ordinal: int = 0) -> str:
    """What the model reads back from a recorded file_search call: its results, with markers."""
    results = (call.get("file_search") or {}).get("results") or []
    found = [
        (r["file_name"], r["score"], "\n".join(c.get("text") or "" for c in r.get("content") or []))
        for r in results
    ]
    return excerpts(found, ordinal)


def excerpts(results: list[tuple[str, float, str]], ordinal: int | None) -> str:
    """Search results as the model reads them: (file name, score, text) each, best first, under
    the markers of search call `ordinal` (no markers if None: nothing could resolve them)."""
    if not results:
        return "No relevant passages were found in the attached files."
    if ordinal is None:
        parts = ["Excerpts from the attached files, best first.\n"]
        parts += [f"(from {name}, score {score:.2f})\n{text}\n" for name, score, text in results]
        return "\n".join(parts)
    parts = ["Excerpts from the attached files, best first. Cite one by copying its marker.\n"]
    for j, (name, score, text) in enumerate(results):
        parts.append(f"{marker(ordinal, j, name)} (score {score:.2f})\n{text}\n")
    return "\n".join(parts)


def marker(i: int, j: int, filename: str) -> str:
    return f"【{i}:{j}†{filename}】"


async def file_search(
    engine: AsyncEngine, settings: Settings, run: Row[Any] | Any, arguments: str
) -> tuple[str, dict[str, Any]]:
    """Search the run's vector stores; (the text the model reads, the step's tool call without its id)."""
    k, threshold = _options(run)
    limit = settings.search_query_max_chars
    queries = queries_of(arguments)
    # the model writes the query: a long one is cut, not refused, and the model is told so
    note = (
        (
            f"Note: queries are limited to {limit} characters; only the first {limit} of a longer one "
            "were searched.\n\n"
        )
        if any(len(q) > limit for q in queries)
        else ""
    )
    queries = [q[:limit] for q in queries]
    stores = await _stores(engine, run) if queries else []
    if stores:
        await ready(engine, stores)
    hits = await search(engine, settings, stores, queries, k, score_threshold=threshold) if stores else []
    if stores:
        async with engine.begin() as conn:
            for store in stores:
                await touch(conn, store)
    results = [
        {
            "file_id": h.file_id,
            "file_name": h.filename,
            "score": h.score,
            "content": [{"type": "text", "text": h.text}],
        }
        for h in hits
    ]
    call = {
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": RANKER, "score_threshold": threshold},
            "results": results,
        },
    }
    if not queries:
        return "file_search needs a non-empty 'query'.", call
    if not stores:
        return "No files are attached to this assistant or thread, so there is nothing to search.", call
    return note + model_output(call), call
