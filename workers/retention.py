"""Retention: what the workers delete on their own, a pass every `retention_interval_seconds`.

- files past their `expires_at` (uploaded with `expires_after`): row, bytes, and their place in
  every vector store (chunks no other store uses go too), as DELETE /v1/files/{id} does;
- vector stores past their `expires_at`: the store, its file links, batches and unused chunks,
  as DELETE /v1/vector_stores/{id} does (the files stay: OpenAI deletes the store, not its files);
- uploads still pending past their `expires_at` (an hour after creation): they become
  `expired` (the object stays, as OpenAI's does) and their parts' rows and bytes go;
- the files of expired containers (idle past their `expires_after`): rows and bytes (the
  container stays, `expired`; the sweeper ends its sandbox session: workers/responses/containers.py);
- with the operator's policy (ASSISTD_RETENTION_*_DAYS, unset by default), threads, responses and
  conversations unused for that many days, with what belongs to them (core/removal.py).

"Unused since a cutoff": a thread with no message or run created since, a conversation with no
item or response created since, a response with no response created since that continues it
(previous_response_id, followed down the whole chain: deleting one would cut a live chain's
history). Reads do not count. Nothing active is ever taken: a thread with a queued, in_progress,
requires_action or cancelling run, a queued or in_progress response, or a conversation one is on.

Every worker (and `assistd serve`'s own) runs the passes; there is no leader. Running them on
several workers at once is harmless: each object is deleted in a transaction of its own, by a
statement that checks again that it is still due (the second worker's finds nothing, and only
rows really deleted are counted), and a pass takes at most BATCH objects of each kind, oldest
first, so that no pass holds the database for long.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.containers import CONTAINER_FILES, CONTAINERS, clear_files, expired
from core.ids import now
from core.models import ACTIVE_RUN_STATUSES, FILES, MESSAGES, RUNS, THREADS, VECTOR_STORES
from core.removal import remove_conversation, remove_response, remove_thread
from core.responses import ACTIVE_RESPONSE_STATUSES, CONVERSATIONS, ITEMS, RESPONSES
from core.storage import Storage
from core.uploads import UPLOADS, expire
from retrieval.removal import remove_file, remove_vector_store
from workers import metrics

log = logging.getLogger("assistd.worker")

BATCH = 500  # objects of one kind a pass deletes at most
DAY = 86_400.0

Remove = Callable[..., Awaitable[bool]]


def file_due(t: float) -> ColumnElement[bool]:
    return and_(FILES.c.expires_at.is_not(None), FILES.c.expires_at <= t)


def store_due(t: float) -> ColumnElement[bool]:
    return and_(VECTOR_STORES.c.expires_at.is_not(None), VECTOR_STORES.c.expires_at <= t)


def thread_unused(cutoff: float) -> ColumnElement[bool]:
    th, m, r = THREADS.c, MESSAGES.c, RUNS.c
    return and_(
        th.created_at < cutoff,
        ~exists().where(m.thread_id == th.id, m.created_at >= cutoff),
        ~exists().where(r.thread_id == th.id, or_(r.created_at >= cutoff, r.status.in_(ACTIVE_RUN_STATUSES))),
    )


def conversation_unused(cutoff: float) -> ColumnElement[bool]:
    c, i, r = CONVERSATIONS.c, ITEMS.c, RESPONSES.c
    return and_(
        c.created_at < cutoff,
        ~exists().where(i.conversation_id == c.id, i.created_at >= cutoff),
        ~exists().where(
            r.conversation_id == c.id, or_(r.created_at >= cutoff, r.status.in_(ACTIVE_RESPONSE_STATUSES))
        ),
    )


def _live_response(table: Any, cutoff: float) -> ColumnElement[bool]:
    return or_(table.c.created_at >= cutoff, table.c.status.in_(ACTIVE_RESPONSE_STATUSES))


def response_unused(cutoff: float) -> ColumnElement[bool]:
    """The guard of the delete: old, ended, and no live response continues it directly (one made
    just now on it); the candidates' query has already excluded the deeper chains."""
    r, child = RESPONSES, RESPONSES.alias("child")
    return and_(
        r.c.created_at < cutoff,
        r.c.status.not_in(ACTIVE_RESPONSE_STATUSES),
        ~exists().where(child.c.previous_response_id == r.c.id, _live_response(child, cutoff)),
    )


def responses_due(cutoff: float) -> Select[Any]:
    """Old responses that no live response's chain leads back to (walked up from the live ones)."""
    r, up = RESPONSES, RESPONSES.alias("up")
    kept = (
        select(r.c.previous_response_id.label("id"))
        .where(_live_response(r, cutoff), r.c.previous_response_id.is_not(None))
        .cte("kept", recursive=True)
    )
    kept = kept.union(
        select(up.c.previous_response_id)
        .join(kept, up.c.id == kept.c.id)
        .where(up.c.previous_response_id.is_not(None))
    )
    return (
        select(r.c.id)
        .where(response_unused(cutoff), r.c.id.not_in(select(kept.c.id)))
        .order_by(r.c.created_at)
        .limit(BATCH)
    )


async def _ids(engine: AsyncEngine, query: Select[Any]) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def _each(engine: AsyncEngine, ids: list[str], remove: Remove, guard: ColumnElement[bool]) -> list[str]:
    """Delete each of `ids` still matching `guard`, one transaction each; those deleted."""
    done = []
    for object_id in ids:
        async with engine.begin() as conn:
            if await remove(conn, object_id, guard):
                done.append(object_id)
    return done


async def _files(engine: AsyncEngine, storage: Storage, t: float) -> int:
    due = select(FILES.c.id).where(file_due(t)).order_by(FILES.c.expires_at).limit(BATCH)
    gone = await _each(engine, await _ids(engine, due), remove_file, file_due(t))
    await _delete_bytes(storage, gone, "a deleted file")
    return len(gone)


async def _uploads(engine: AsyncEngine, storage: Storage, t: float) -> int:
    c = UPLOADS.c
    due = select(c.id).where(c.status == "pending", c.expires_at <= t).order_by(c.expires_at).limit(BATCH)
    done = 0
    for upload_id in await _ids(engine, due):
        async with engine.begin() as conn:
            keys = await expire(conn, upload_id, t)
        if keys is not None:
            done += 1
            await _delete_bytes(storage, keys, f"expired upload {upload_id}")
    return done


async def _container_files(engine: AsyncEngine, storage: Storage, t: float) -> int:
    has_files = exists().where(CONTAINER_FILES.c.container_id == CONTAINERS.c.id)
    due = select(CONTAINERS.c.id).where(expired(t), has_files).order_by(CONTAINERS.c.last_active_at)
    cleared = 0
    for container_id in await _ids(engine, due.limit(BATCH)):
        async with engine.begin() as conn:
            keys = await clear_files(conn, container_id, t)
        cleared += len(keys)
        await _delete_bytes(storage, keys, f"expired container {container_id}")
    return cleared


async def _delete_bytes(storage: Storage, keys: list[str], of: str) -> None:
    """After the commit, as the routes do: never a row without its bytes."""
    for key in keys:
        try:
            await asyncio.to_thread(storage.delete, key)
        except Exception:
            log.warning("retention: the bytes of %s (%s) stay in storage", key, of, exc_info=True)


async def _by_policy(engine: AsyncEngine, days: int | None, kind: str, t: float) -> int:
    if days is None:
        return 0
    cutoff = t - days * DAY
    table: Any
    guard: ColumnElement[bool]
    remove: Remove
    if kind == "threads":
        table, guard, remove = THREADS, thread_unused(cutoff), remove_thread
    elif kind == "conversations":
        table, guard, remove = CONVERSATIONS, conversation_unused(cutoff), remove_conversation
    else:
        ids = await _ids(engine, responses_due(cutoff))
        return len(await _each(engine, ids, remove_response, response_unused(cutoff)))
    due = select(table.c.id).where(guard).order_by(table.c.created_at).limit(BATCH)
    return len(await _each(engine, await _ids(engine, due), remove, guard))


async def retention_pass(
    engine: AsyncEngine, storage: Storage, settings: Settings, t: float | None = None
) -> dict[str, int]:
    """One pass at time `t` (default now): how many objects of each kind it deleted."""
    t = now() if t is None else t
    store_ids = select(VECTOR_STORES.c.id).where(store_due(t)).order_by(VECTOR_STORES.c.expires_at)
    removed = {
        "files": await _files(engine, storage, t),
        "vector_stores": len(
            await _each(engine, await _ids(engine, store_ids.limit(BATCH)), remove_vector_store, store_due(t))
        ),
        "uploads": await _uploads(engine, storage, t),
        "container_files": await _container_files(engine, storage, t),
        "threads": await _by_policy(engine, settings.retention_thread_days, "threads", t),
        "responses": await _by_policy(engine, settings.retention_response_days, "responses", t),
        "conversations": await _by_policy(engine, settings.retention_conversation_days, "conversations", t),
    }
    for kind, n in removed.items():
        if n:
            metrics.RETENTION_DELETED.labels(kind).inc(n)
    if any(removed.values()):
        log.info("retention deleted %s", ", ".join(f"{n} {kind}" for kind, n in removed.items() if n))
    return removed


async def retain(engine: AsyncEngine, storage: Storage, settings: Settings) -> None:
    """Passes until cancelled (Runner.close); none when the interval is 0."""
    interval = settings.retention_interval_seconds
    if interval <= 0:
        return
    while True:
        # spread: workers started together do not all pass (and find the same rows) at once
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))
        while True:
            try:
                removed = await retention_pass(engine, storage, settings)
            except Exception:
                log.warning("retention pass failed; trying again later", exc_info=True)
                break
            if max(removed.values()) < BATCH:  # a full batch: more may be due, go on at once
                break
