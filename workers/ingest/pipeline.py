"""Ingestion: vector store files' bytes become embedded chunks, in a worker process.

A queue message carries (vector store id, file id) and only starts the work, as for runs: the
file is claimed with a database lease that this process renews while it works, so a worker that
dies leaves a lapsed lease behind and `sweep_ingestion` sends the file again. A file waiting for
one of this process's `ingest_concurrency` turns has its `enqueued_at` refreshed instead, so the
sweeper leaves it alone. After `ingest_max_attempts` claims a file fails with `server_error`:
no file stays in_progress for ever.

A turn takes up to `ingest_group_files` waiting files of one store at once (one with the local
model, whose embedding dwarfs the rest): one claim, one read of the store, one thread hop to
extract and chunk, embedding requests that span files, one write. Per file, that bookkeeping
cost more than an external endpoint's embedding. Outcomes are written with those of the
store's other files that end meanwhile (workers/ingest/group_commit.py).

Turns are shared fairly by projects (workers/ingest/turns.py): between embedding requests a
group offers its turn to another project's waiting files, and drops its files that were
detached (or whose file or store was deleted) meanwhile, writing nothing for them.

Chunks are shared by content: their key hashes the bytes, the store's embedding model and
endpoint and the chunk sizes, so a file added to several stores alike is embedded once.

Everything here runs on an event loop of its own, in threads at nice `ingest_nice`
(workers/ingest/loop_thread.py): a busy ingestion leaves the CPU to searches and runs first.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.db import async_engine, is_sqlite
from core.ids import new_id, now
from core.models import FILE_CHUNKS, FILES, VECTOR_STORE_FILES, VECTOR_STORES
from core.storage import storage
from retrieval.catalog import drop_unused_chunks, lock_store, recount
from workers.ingest.files import (
    Outcome,
    Pending,
    content_key,
    prepare_all,
    read_all,
    sizes,
    spans,
)
from workers.ingest.group_commit import GroupCommit
from workers.ingest.loop_thread import LoopThread
from workers.ingest.turns import Turn, Turns

log = logging.getLogger("assistd.ingest")
VSF, CHUNKS = VECTOR_STORE_FILES.c, FILE_CHUNKS.c
INSERT_ROWS = 500  # chunks per INSERT
UPDATE_FILES = 500  # files per UPDATE of their outcomes
FLUSH_ROWS = 2000  # a group writes its finished files once they hold this many chunks
# chunks per request to the local model: about one forward batch (8192 word pieces) of 800-token
# chunks, a few seconds of CPU. The turn is offered and detached files are dropped between
# requests: at 64 chunks a request ran for a minute on a busy machine.
LOCAL_SPAN = 8


def _insert_ignoring_duplicates(engine: AsyncEngine) -> Any:
    # two stores ingesting the same bytes at once write the same chunks: the first one wins
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(FILE_CHUNKS).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(FILE_CHUNKS).on_conflict_do_nothing()


def _per_file(ids: list[str], values: list[Any], column: Any) -> Any:
    """CASE id WHEN ... THEN ...: one UPDATE gives each file its own value."""
    return case(*[(VSF.id == i, literal(v, column.type)) for i, v in zip(ids, values)], else_=column)


class Ingestor:
    """One per worker process, on ingestion's own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # a connection per slot, the group writer and the lease keeper
        self.engine = async_engine(
            settings.database_url, pool_size=settings.ingest_concurrency + 2, pooler=settings.database_pooler
        )
        # single statements need no BEGIN / COMMIT (or ROLLBACK after a read): a third of the round trips
        self.single = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.storage = storage(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('i')[-8:]}"
        self.waiting: dict[str, dict[str, None]] = {}  # store id -> its files waiting here, in order
        self.running: set[tuple[str, str]] = set()
        self.stores: dict[
            str, tuple[str, bool]
        ] = {}  # store id -> (project, embeds locally); a store keeps both
        self.runners: dict[str, set[asyncio.Task[None]]] = {}  # store id -> the tasks taking its files
        self.turns = Turns(settings.ingest_concurrency)
        self.groups = itertools.count()  # a group's priority within its project: the oldest goes first
        self.loop = asyncio.get_running_loop()
        self.outcomes: GroupCommit[Outcome] = GroupCommit(self.write_outcomes)
        self.tasks = [asyncio.create_task(self._renew())]

    def start(self, store_id: str, *file_ids: str) -> None:
        """Ingest the files once a turn is free; a file already waiting or running here is ignored.
        Called from any thread (the actors run on dramatiq's threads)."""
        self.loop.call_soon_threadsafe(self._add, store_id, file_ids)

    def _add(self, store_id: str, file_ids: tuple[str, ...]) -> None:
        waiting = self.waiting.setdefault(store_id, {})
        waiting.update((f, None) for f in file_ids if (store_id, f) not in self.running)
        if not waiting:
            del self.waiting[store_id]
            return
        # a store's files are taken by up to `ingest_concurrency` tasks, each waiting for a turn:
        # waiting costs nothing, and a store alone on the worker still fills every turn. A task that
        # has just ended (its callback not run yet) is not counted: it takes nothing more.
        runners = self.runners[store_id] = {t for t in self.runners.get(store_id, ()) if not t.done()}
        while len(runners) < max(1, self.settings.ingest_concurrency):
            task = asyncio.create_task(self._run(store_id))
            runners.add(task)
            task.add_done_callback(functools.partial(self._ended, store_id))

    def _ended(self, store_id: str, task: asyncio.Task[None]) -> None:
        runners = self.runners.get(store_id, set())
        runners.discard(task)
        if not runners:
            self.runners.pop(store_id, None)

    async def _run(self, store_id: str) -> None:
        """Take groups of the store's waiting files, each in a turn, until none waits."""
        try:
            project, local = await self._store_info(store_id)
        except Exception:
            # not refreshed any more, its files are sent again by the sweeper
            log.exception("looking up vector store %s failed", store_id)
            self.waiting.pop(store_id, None)
            return
        while self.waiting.get(store_id):
            turn = Turn(self.turns, project, next(self.groups))
            await turn.take()
            file_ids: list[str] = []
            failed = False
            try:
                file_ids = self._take(store_id, 1 if local else max(1, self.settings.ingest_group_files))
                self.running.update((store_id, f) for f in file_ids)
                if file_ids:
                    claimed = await self._claim(store_id, file_ids)
                    if claimed:
                        await self._ingest_or_fail(store_id, claimed, turn)
            except asyncio.CancelledError:
                raise  # shutting down: the leases lapse and the sweeper sends the files again
            except Exception:
                # the claim failed (database): the files are re-sent by the sweeper
                log.exception("ingesting files of %s failed", store_id)
                failed = True
            finally:
                self.running.difference_update((store_id, f) for f in file_ids)
                turn.give_back()
            if failed:
                await asyncio.sleep(0.5)

    def _take(self, store_id: str, n: int) -> list[str]:
        """Up to `n` of the store's waiting files, first come first."""
        files = self.waiting.get(store_id, {})
        taken = list(itertools.islice(files, n))
        for f in taken:
            del files[f]
        if not files:
            self.waiting.pop(store_id, None)
        return taken

    async def _store_info(self, store_id: str) -> tuple[str, bool]:
        """The store's project and whether it embeds with the local model."""
        from retrieval.embed import LOCAL_ALIASES

        if store_id not in self.stores:
            if len(self.stores) > 10_000:
                self.stores.clear()
            async with self.single.connect() as conn:
                row = (
                    await conn.execute(
                        select(VECTOR_STORES.c.project, VECTOR_STORES.c.embedding_model).where(
                            VECTOR_STORES.c.id == store_id
                        )
                    )
                ).first()
            # a store deleted meanwhile: its files' claims find nothing
            self.stores[store_id] = (row.project, row.embedding_model in LOCAL_ALIASES) if row else ("", True)
        return self.stores[store_id]

    async def _claim(self, store_id: str, file_ids: list[str]) -> list[Any]:
        """Claim those of the files no live worker holds, in one statement; fail those out of attempts."""
        t = now()
        async with self.single.connect() as conn:
            rows = (
                await conn.execute(
                    update(VECTOR_STORE_FILES)
                    .where(
                        VSF.vector_store_id == store_id,
                        VSF.id.in_(file_ids),
                        VSF.status == "in_progress",
                        or_(VSF.owner.is_(None), VSF.lease_until < t),
                    )
                    .values(
                        owner=self.owner,
                        lease_until=t + self.settings.ingest_lease_seconds,
                        attempts=VSF.attempts + 1,
                    )
                    .returning(*VECTOR_STORE_FILES.c)
                )
            ).all()
        spent = [r for r in rows if r.attempts > self.settings.ingest_max_attempts]
        await self.outcomes.add(
            store_id, *(Outcome.failed(r, "server_error", "The file could not be processed.") for r in spent)
        )
        return [r for r in rows if r.attempts <= self.settings.ingest_max_attempts]

    async def _ingest_or_fail(self, store_id: str, vsfs: list[Any], turn: Turn | None = None) -> None:
        try:
            await self.ingest(store_id, vsfs, turn)
            return
        except asyncio.CancelledError:
            raise  # shutting down: the leases lapse and the sweeper sends the files again
        except Exception as exc:
            if len(vsfs) == 1:
                log.exception("ingesting %s into %s failed", vsfs[0].id, store_id)
                await self._give_up(store_id, vsfs, exc)
                return
            log.warning(
                "ingesting %d files into %s failed (%r): trying them one at a time", len(vsfs), store_id, exc
            )
        # one bad file must not cost the others of its group their attempts
        mine = await self._still_mine(store_id, {v.id for v in vsfs})
        for v in vsfs:
            if v.id in mine:
                await self._ingest_or_fail(store_id, [v], turn)

    async def _give_up(self, store_id: str, vsfs: list[Any], exc: Exception) -> None:
        """Hand the files back to the sweeper, or fail those out of attempts."""
        last = [v for v in vsfs if v.attempts >= self.settings.ingest_max_attempts]
        await self._release(store_id, [v.id for v in vsfs if v.attempts < self.settings.ingest_max_attempts])
        await self.outcomes.add(
            store_id,
            *(Outcome.failed(v, "server_error", f"The file could not be processed: {exc}") for v in last),
        )

    async def ingest(self, store_id: str, vsfs: list[Any], turn: Turn | None = None) -> None:
        """Extract, chunk and embed the files (unless their content is embedded already), then complete them.
        Between embedding requests the turn is offered to other projects, and files detached meanwhile
        (or whose store or file was deleted) are dropped: nothing more is spent or written for them."""
        claimed = self.loop.time()
        store, names = await self._store(store_id, [v.id for v in vsfs])
        vsfs = [v for v in vsfs if v.id in names]  # files deleted meanwhile: their rows went with them
        if store is None or not vsfs:
            return  # the store was deleted meanwhile: its rows went with it
        datas = await asyncio.to_thread(read_all, self.storage, [v.id for v in vsfs])
        chunking = [sizes(v.chunking_strategy) for v in vsfs]
        keys = [content_key(d, store, *c) for d, c in zip(datas, chunking)]
        known = await self._known(keys)
        done = [Outcome(v, "completed", k, known[k]) for v, k in zip(vsfs, keys) if k in known]
        first: dict[str, int] = {}  # key -> the group's first file with that content
        for i, k in enumerate(keys):
            if k not in known:
                first.setdefault(k, i)
        jobs = list(first.values())
        prepared = await asyncio.to_thread(
            prepare_all, [(names[vsfs[i].id], datas[i], *chunking[i]) for i in jobs]
        )
        todo: dict[str, Pending] = {}
        for i, got in zip(jobs, prepared):
            if isinstance(got, Outcome):
                got.vsf = vsfs[i]
                done.append(got)
            else:
                todo[keys[i]] = Pending(vsfs[i], keys[i], got)
        for i, k in enumerate(keys):
            if k in first and first[k] != i:  # same bytes as a file before it: ends as that one does
                if k in todo:
                    todo[k].same.append(vsfs[i])
                else:
                    done.append(Outcome.failed(vsfs[i], **_error_of(done, vsfs[first[k]].id)))
        await self._embed(store, list(todo.values()), done, turn, claimed)

    async def _embed(
        self, store: Any, files: list[Pending], done: list[Outcome], turn: Turn | None, claimed: float
    ) -> None:
        """Embed the files' chunks, requests spanning files; write each file once it is embedded."""
        from retrieval.embed import LOCAL_ALIASES
        from retrieval.store import embedder_for

        embedder = embedder_for(self.settings, store.embedding_model, store.embedding_endpoint)
        left = {id(f): len(f.texts) for f in files}
        for f in files:
            if not f.texts:
                done += f.outcomes()
        mine = {v.id for f in files for v in (f.vsf, *f.same)}
        gone: set[str] = set()  # files detached (or deleted) meanwhile: nothing is written for them
        step = self.settings.embeddings_batch_size
        if store.embedding_model in LOCAL_ALIASES:
            step = min(step, LOCAL_SPAN)
        for n, span in enumerate(spans(files, step)):
            if turn is not None:
                await turn.offer()
            if n or self.loop.time() - claimed > 1.0:  # for a quick first request, the claim has just said so
                still = await self._still_mine(store.id, mine)
                gone |= mine - still
                mine = still
                span = [(f, p) for f, p in span if _alive(f, mine)]
                if not mine:
                    break
                if not span:
                    continue
            vectors = await asyncio.to_thread(embedder.embed, [f.texts[p] for f, p in span])
            for (f, p), v in zip(span, vectors):
                f.add(p, v)
                left[id(f)] -= 1
                if not left[id(f)]:
                    done += f.outcomes()
            if sum(len(o.rows) for o in done) >= FLUSH_ROWS:
                await self.outcomes.add(store.id, *[o for o in done if o.vsf.id not in gone])
                done = []
        await self.outcomes.add(store.id, *[o for o in done if o.vsf.id not in gone])

    async def _store(self, store_id: str, file_ids: list[str]) -> tuple[Any, dict[str, str]]:
        """The store's row and the files' names (those not deleted), in one query."""
        async with self.single.connect() as conn:
            rows = (
                await conn.execute(
                    select(VECTOR_STORES, FILES.c.id.label("file_id"), FILES.c.filename)
                    .select_from(VECTOR_STORES.join(FILES, FILES.c.id.in_(file_ids)))
                    .where(VECTOR_STORES.c.id == store_id)
                )
            ).all()
        return (rows[0] if rows else None), {r.file_id: r.filename for r in rows}

    async def _known(self, keys: Sequence[str]) -> dict[str, int]:
        """The keys whose chunks are stored already, with the usage (bytes) of those chunks."""
        async with self.single.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        CHUNKS.content_key,
                        func.sum(func.length(CHUNKS.text)),
                        func.sum(func.length(CHUNKS.vector)),
                    )
                    .where(CHUNKS.content_key.in_(sorted(set(keys))))
                    .group_by(CHUNKS.content_key)
                )
            ).all()
        return {k: int(text or 0) + int(vec or 0) for k, text, vec in rows}

    async def _still_mine(self, store_id: str, file_ids: set[str]) -> set[str]:
        async with self.single.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(VSF.id).where(
                            VSF.vector_store_id == store_id,
                            VSF.id.in_(sorted(file_ids)),
                            VSF.owner == self.owner,
                            VSF.status == "in_progress",
                        )
                    )
                )
                .scalars()
                .all()
            )
        return set(rows)

    async def write_outcomes(self, store_id: str, outcomes: list[Outcome]) -> None:
        """One transaction for these files of one store: one store lock, one recount."""
        rows = [r for o in outcomes for r in o.rows]
        statement = _insert_ignoring_duplicates(self.engine)
        async with self.engine.begin() as conn:
            # chunks before the store's lock, which is then held for the bookkeeping only
            for lo in range(0, len(rows), INSERT_ROWS):
                await conn.execute(statement, rows[lo : lo + INSERT_ROWS])
            await lock_store(conn, store_id)
            written: dict[str, str | None] = {}
            for part in _by_status(outcomes):
                written.update(await self._write_status(conn, store_id, part))
            # a file not ours any more: the chunks we wrote may be nobody's; ours: its old content's may be
            stale = [
                o.key
                if o.vsf.id not in written
                else (o.vsf.content_key if o.vsf.content_key != o.key else None)
                for o in outcomes
            ]
            if written:
                await recount(conn, store_id, list(written.values()))
            await drop_unused_chunks(conn, stale)

    async def _write_status(self, conn: Any, store_id: str, outcomes: list[Outcome]) -> dict[str, str | None]:
        """End files of one status and error (if ours and in progress): their ids -> batch ids."""
        ids = [o.vsf.id for o in outcomes]
        return {
            r.id: r.batch_id
            for r in (
                await conn.execute(
                    update(VECTOR_STORE_FILES)
                    .where(
                        VSF.vector_store_id == store_id,
                        VSF.id.in_(ids),
                        VSF.status == "in_progress",
                        or_(VSF.owner == self.owner, VSF.owner.is_(None)),
                    )
                    .values(
                        status=outcomes[0].status,
                        last_error=outcomes[0].last_error,
                        owner=None,
                        lease_until=None,
                        content_key=_per_file(
                            ids, [o.key or o.vsf.content_key for o in outcomes], VSF.content_key
                        ),
                        usage_bytes=_per_file(ids, [o.usage for o in outcomes], VSF.usage_bytes),
                    )
                    .returning(VSF.id, VSF.batch_id)
                )
            ).all()
        }

    async def _release(self, store_id: str, file_ids: list[str]) -> None:
        """Give files back; the sweeper sends them again after `ingest_requeue_after_seconds`."""
        if not file_ids:
            return
        async with self.single.connect() as conn:
            await conn.execute(
                update(VECTOR_STORE_FILES)
                .where(VSF.vector_store_id == store_id, VSF.id.in_(file_ids), VSF.owner == self.owner)
                .values(owner=None, lease_until=None, enqueued_at=now())
            )

    async def _renew(self) -> None:
        every = self.settings.ingest_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self._renew_once()
            except Exception:
                log.warning("renewing ingestion leases failed; retrying", exc_info=True)

    async def _renew_once(self) -> None:
        t = now()
        running = sorted(self.running)
        waiting = [(s, f) for s, files in self.waiting.items() for f in files]
        async with self.engine.begin() as conn:
            for lo in range(0, len(running), UPDATE_FILES):
                await conn.execute(
                    update(VECTOR_STORE_FILES)
                    .where(
                        tuple_(VSF.vector_store_id, VSF.id).in_(running[lo : lo + UPDATE_FILES]),
                        VSF.owner == self.owner,
                    )
                    .values(lease_until=t + self.settings.ingest_lease_seconds)
                )
            for lo in range(0, len(waiting), UPDATE_FILES):
                await conn.execute(
                    update(VECTOR_STORE_FILES)
                    .where(
                        tuple_(VSF.vector_store_id, VSF.id).in_(waiting[lo : lo + UPDATE_FILES]),
                        VSF.owner.is_(None),
                    )
                    .values(enqueued_at=t)
                )

    async def close(self) -> None:
        tasks = self.tasks + [t for runners in self.runners.values() for t in runners]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.outcomes.close()
        await self.engine.dispose()


def _alive(f: Pending, mine: set[str]) -> bool:
    """Whether a file's chunks are still wanted: it, or a file of the group with its content, is ours."""
    return f.vsf.id in mine or any(v.id in mine for v in f.same)


def _by_status(outcomes: list[Outcome]) -> list[list[Outcome]]:
    """The outcomes in parts of one status and error, `UPDATE_FILES` at most."""
    parts: dict[str, list[Outcome]] = {}
    for o in outcomes:
        parts.setdefault(f"{o.status}|{o.last_error}", []).append(o)
    return [p[lo : lo + UPDATE_FILES] for p in parts.values() for lo in range(0, len(p), UPDATE_FILES)]


def _error_of(done: list[Outcome], file_id: str) -> dict[str, str]:
    """The failure of an earlier file of the group, for a file with the same content."""
    error = next(o.last_error for o in done if o.vsf.id == file_id and o.last_error)
    return {"code": error["code"], "message": error["message"]}


_ingestor: Ingestor | None = None
_thread: LoopThread | None = None
_lock = threading.Lock()


async def _create(settings: Settings) -> Ingestor:
    return Ingestor(settings)


def ingestor(settings: Settings) -> Ingestor:
    """This process's Ingestor, created on first use with its niced loop thread."""
    global _ingestor, _thread
    with _lock:
        if _ingestor is None:
            # On SQLite ingestion's writes hold the database's one write lock: a niced holder
            # would keep the API and the runs waiting, so there it keeps its priority.
            nice = 0 if is_sqlite(settings.database_url) else settings.ingest_nice
            _thread = LoopThread(nice, settings.ingest_concurrency + 2)
            _ingestor = _thread.run(_create(settings))
        return _ingestor


def stop_ingestor(timeout: float = 30.0) -> None:
    """Stop this process's ingestion (unfinished files' leases lapse) and its thread."""
    global _ingestor, _thread
    with _lock:
        if _ingestor is not None and _thread is not None:
            try:
                _thread.run(_ingestor.close(), timeout)
            finally:
                _thread.stop()
        _ingestor = _thread = None


async def sweep_ingestion(engine: AsyncEngine, settings: Settings, *, orphans_now: bool = False) -> int:
    """Send again the in_progress files whose ingestion was lost; the number sent.

    Lost means: claimed but the lease lapsed (its worker died), or never claimed and not sent
    (nor refreshed by a waiting worker) for `ingest_requeue_after_seconds` (a lost message, an
    API that died before enqueueing). `orphans_now` counts every in_progress file as lost
    (embedded mode at start-up, where this process is the only worker).
    """
    t = now()
    lost = VSF.status == "in_progress"
    if not orphans_now:
        lost = and_(
            lost,
            or_(
                and_(VSF.owner.is_not(None), VSF.lease_until < t),
                and_(VSF.owner.is_(None), VSF.enqueued_at <= t - settings.ingest_requeue_after_seconds),
            ),
        )
    async with engine.begin() as conn:
        again = (
            await conn.execute(
                update(VECTOR_STORE_FILES)
                .where(lost)
                .values(enqueued_at=t, owner=None, lease_until=None)
                .returning(VSF.vector_store_id, VSF.id)
            )
        ).all()
        stores = {s for s, _ in again}
        models: dict[str, str] = {}
        if stores:
            query = select(VECTOR_STORES.c.id, VECTOR_STORES.c.embedding_model).where(
                VECTOR_STORES.c.id.in_(stores)
            )
            models = {r.id: r.embedding_model for r in (await conn.execute(query)).all()}
    if again:
        from core.ingest_queue import by_store, enqueue_ingest_files
        from retrieval.embed import LOCAL_ALIASES

        def send() -> None:
            for store_id, file_ids in by_store([(s, f) for s, f in again]).items():
                # the local model's files one to a message, as the API sends them: spread evenly
                local = models.get(store_id) in (*LOCAL_ALIASES, None)
                enqueue_ingest_files(store_id, file_ids, per_message=1 if local else None)

        await asyncio.to_thread(send)
        log.info("sweeper re-sent %d vector store file(s) for ingestion", len(again))
    return len(again)
