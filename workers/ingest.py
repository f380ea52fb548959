"""Ingestion: a vector store file's bytes become embedded chunks, in a worker process.

A queue message carries (vector store id, file id) and only starts the work, as for runs: the
file is claimed with a database lease that this process renews while it works, so a worker that
dies leaves a lapsed lease behind and `sweep_ingestion` sends the file again. A file waiting for
one of this process's `ingest_concurrency` slots has its `enqueued_at` refreshed instead, so the
sweeper leaves it alone. After `ingest_max_attempts` claims a file fails with `server_error`:
no file stays in_progress for ever.

Chunks are shared by content: their key hashes the bytes, the store's embedding model and
endpoint and the chunk sizes, so a file added to several stores alike is embedded once.
Extraction, chunking and embedding are CPU-bound and run in threads, off the event loop. A
file's outcome is written with those of the store's other files that end meanwhile
(workers/group_commit.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.db import async_engine
from core.ids import new_id, now
from core.models import FILE_CHUNKS, FILES, VECTOR_STORE_FILES, VECTOR_STORES
from core.storage import Storage, storage
from retrieval.catalog import drop_unused_chunks, lock_store, recount
from retrieval.errors import InvalidFile, UnsupportedFile
from workers.group_commit import GroupCommit

log = logging.getLogger("assistd.ingest")
VSF, CHUNKS = VECTOR_STORE_FILES.c, FILE_CHUNKS.c
INSERT_ROWS = 500


def content_key(data: bytes, store: Any, size: int, overlap: int) -> str:
    """The embed-once cache key: same bytes, model and chunking give the same chunks."""
    parts = [hashlib.sha256(data).hexdigest(), store.embedding_model, store.embedding_endpoint or "", size, overlap]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def sizes(chunking: dict[str, Any] | None) -> tuple[int, int]:
    static = (chunking or {}).get("static") or {}
    return int(static.get("max_chunk_size_tokens", 800)), int(static.get("chunk_overlap_tokens", 400))


def _read(store: Storage, file_id: str) -> bytes:
    return b"".join(store.open(file_id))


def _insert_ignoring_duplicates(engine: AsyncEngine) -> Any:
    # two stores ingesting the same bytes at once write the same chunks: the first one wins
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(FILE_CHUNKS).on_conflict_do_nothing()


@dataclass
class Outcome:
    """How a file's ingestion ended, to be written (see Ingestor.write_outcomes)."""

    vsf: Any
    status: str
    key: str | None
    usage: int
    last_error: dict[str, str] | None
    rows: list[dict[str, Any]]  # its new chunks


class Ingestor:
    """One per worker process, on the worker's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # a connection per file slot, the group writer and the lease keeper: a pool smaller than
        # that opens and closes a connection per statement (and prepares every statement again)
        self.engine = async_engine(settings.database_url, pool_size=settings.ingest_concurrency + 2)
        # single statements need no BEGIN / COMMIT (or ROLLBACK after a read): a third of the round trips
        self.single = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.storage = storage(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('i')[-8:]}"
        self.slots = asyncio.Semaphore(settings.ingest_concurrency)
        self.waiting: set[tuple[str, str]] = set()
        self.running: set[tuple[str, str]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.outcomes = GroupCommit(self.write_outcomes)
        self._keepalive = asyncio.create_task(self._renew())

    def start(self, store_id: str, file_id: str) -> None:
        """Ingest the file once a slot is free; a file already waiting or running here is ignored."""
        key = (store_id, file_id)
        if key in self.waiting or key in self.running:
            return
        self.waiting.add(key)
        task = asyncio.create_task(self._run(key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, key: tuple[str, str]) -> None:
        try:
            async with self.slots:
                self.waiting.discard(key)
                self.running.add(key)
                claimed = await self._claim(*key)
                if claimed is not None:
                    await self._ingest_or_fail(claimed)
        finally:
            self.waiting.discard(key)
            self.running.discard(key)

    async def _claim(self, store_id: str, file_id: str) -> Any:
        t = now()
        async with self.single.connect() as conn:
            row = (await conn.execute(
                update(VECTOR_STORE_FILES)
                .where(VSF.vector_store_id == store_id, VSF.id == file_id, VSF.status == "in_progress",
                       or_(VSF.owner.is_(None), VSF.lease_until < t))
                .values(owner=self.owner, lease_until=t + self.settings.ingest_lease_seconds,
                        attempts=VSF.attempts + 1)
                .returning(*VECTOR_STORE_FILES.c)
            )).first()
        if row is not None and row.attempts > self.settings.ingest_max_attempts:
            await self.finish(row, "failed", error=("server_error", "The file could not be processed."))
            return None
        return row

    async def _ingest_or_fail(self, vsf: Any) -> None:
        try:
            await self.ingest(vsf)
        except UnsupportedFile as exc:
            await self.finish(vsf, "failed", error=("unsupported_file", f"{exc}"))
        except InvalidFile as exc:
            await self.finish(vsf, "failed", error=("invalid_file", f"{exc}"))
        except asyncio.CancelledError:
            raise  # shutting down: the lease lapses and the sweeper sends the file again
        except Exception as exc:
            log.exception("ingesting %s into %s failed", vsf.id, vsf.vector_store_id)
            if vsf.attempts >= self.settings.ingest_max_attempts:
                await self.finish(vsf, "failed", error=("server_error", f"The file could not be processed: {exc}"))
            else:
                await self._release(vsf)

    async def ingest(self, vsf: Any) -> None:
        """Extract, chunk and embed the file (unless its content is embedded already), then complete it."""
        async with self.single.connect() as conn:
            store = (await conn.execute(
                select(VECTOR_STORES, FILES.c.filename).select_from(VECTOR_STORES.join(FILES, FILES.c.id == vsf.id))
                .where(VECTOR_STORES.c.id == vsf.vector_store_id))).first()
        if store is None:
            return  # the store or the file was deleted meanwhile: its row went with it
        data = await asyncio.to_thread(_read, self.storage, vsf.id)
        size, overlap = sizes(vsf.chunking_strategy)
        key = content_key(data, store, size, overlap)
        rows: list[dict[str, Any]] | None = None
        if not await self._embedded(key):
            # loaded on first use: numpy, the tokenizer and the model cost a worker seconds to import
            from retrieval.chunk import chunk_text
            from retrieval.extract import extract_text
            from retrieval.store import embedder_for

            text = await asyncio.to_thread(extract_text, store.filename, data)
            chunks = await asyncio.to_thread(chunk_text, text, size, overlap)
            embedder = embedder_for(self.settings, store.embedding_model, store.embedding_endpoint)
            rows = []
            step = self.settings.embeddings_batch_size
            for lo in range(0, len(chunks), step):
                if lo and not await self._still_mine(vsf):  # the claim has just said so for the first
                    return
                texts = [c.text for c in chunks[lo:lo + step]]
                vectors = await asyncio.to_thread(embedder.embed, texts)
                rows += [{"content_key": key, "position": lo + i, "text": t, "vector": v.astype("<f4").tobytes()}
                         for i, (t, v) in enumerate(zip(texts, vectors))]
        await self.finish(vsf, "completed", key=key, rows=rows)

    async def _embedded(self, key: str) -> bool:
        async with self.single.connect() as conn:
            return (await conn.execute(select(CHUNKS.position).where(CHUNKS.content_key == key).limit(1))).first() is not None

    async def _still_mine(self, vsf: Any) -> bool:
        async with self.single.connect() as conn:
            row = (await conn.execute(select(VSF.owner, VSF.status).where(
                VSF.vector_store_id == vsf.vector_store_id, VSF.id == vsf.id))).first()
        return row is not None and row.owner == self.owner and row.status == "in_progress"

    async def _usage(self, key: str) -> int:
        async with self.single.connect() as conn:
            text, vec = (await conn.execute(select(func.sum(func.length(CHUNKS.text)), func.sum(
                func.length(CHUNKS.vector))).where(CHUNKS.content_key == key))).one()
        return int(text or 0) + int(vec or 0)

    async def finish(self, vsf: Any, status: str, *, key: str | None = None,
                     error: tuple[str, str] | None = None, rows: list[dict[str, Any]] | None = None) -> None:
        """Complete or fail the file (writing its new chunks, if any), if it is still ours and in
        progress; recount its store."""
        if rows is not None:
            usage = sum(len(r["text"]) + len(r["vector"]) for r in rows)
        else:
            usage = await self._usage(key) if key else 0
        last_error = {"code": error[0], "message": error[1][:1000]} if error else None
        await self.outcomes.add(vsf.vector_store_id, Outcome(vsf, status, key, usage, last_error, rows or []))

    async def write_outcomes(self, store_id: str, outcomes: list[Outcome]) -> None:
        """One transaction for these files of one store: one store lock, one recount."""
        rows = [r for o in outcomes for r in o.rows]
        statement = _insert_ignoring_duplicates(self.engine)
        async with self.engine.begin() as conn:
            # chunks before the store's lock, which is then held for the bookkeeping only
            for lo in range(0, len(rows), INSERT_ROWS):
                await conn.execute(statement, rows[lo:lo + INSERT_ROWS])
            await lock_store(conn, store_id)
            batches: list[str | None] = []
            stale: list[str | None] = []
            for o in outcomes:
                done = (await conn.execute(
                    update(VECTOR_STORE_FILES)
                    .where(VSF.vector_store_id == store_id, VSF.id == o.vsf.id, VSF.status == "in_progress",
                           or_(VSF.owner == self.owner, VSF.owner.is_(None)))
                    .values(status=o.status, last_error=o.last_error, content_key=o.key or o.vsf.content_key,
                            usage_bytes=o.usage, owner=None, lease_until=None)
                    .returning(VSF.batch_id)
                )).first()
                if done is None:
                    stale.append(o.key)  # not ours any more: our chunks may be nobody's
                else:
                    batches.append(done.batch_id)
                    stale.append(o.vsf.content_key if o.vsf.content_key != o.key else None)
            if batches:
                await recount(conn, store_id, batches)
            await drop_unused_chunks(conn, stale)

    async def _release(self, vsf: Any) -> None:
        """Give the file back; the sweeper sends it again after `ingest_requeue_after_seconds`."""
        async with self.single.connect() as conn:
            await conn.execute(update(VECTOR_STORE_FILES).where(
                VSF.vector_store_id == vsf.vector_store_id, VSF.id == vsf.id, VSF.owner == self.owner
            ).values(owner=None, lease_until=None, enqueued_at=now()))

    async def _renew(self) -> None:
        every = self.settings.ingest_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                t = now()
                async with self.engine.begin() as conn:
                    if self.running:
                        await conn.execute(update(VECTOR_STORE_FILES).where(
                            tuple_(VSF.vector_store_id, VSF.id).in_(list(self.running)), VSF.owner == self.owner
                        ).values(lease_until=t + self.settings.ingest_lease_seconds))
                    if self.waiting:
                        await conn.execute(update(VECTOR_STORE_FILES).where(
                            tuple_(VSF.vector_store_id, VSF.id).in_(list(self.waiting)), VSF.owner.is_(None)
                        ).values(enqueued_at=t))
            except Exception:
                log.warning("renewing ingestion leases failed; retrying", exc_info=True)

    async def close(self) -> None:
        self._keepalive.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.outcomes.close()
        await self.engine.dispose()


_ingestor: Ingestor | None = None


def ingestor(settings: Settings) -> Ingestor:
    """This process's Ingestor, created on first use on the running event loop."""
    global _ingestor
    if _ingestor is None:
        _ingestor = Ingestor(settings)
    return _ingestor


async def close_ingestor() -> None:
    global _ingestor
    if _ingestor is not None:
        await _ingestor.close()
        _ingestor = None


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
        lost = and_(lost, or_(
            and_(VSF.owner.is_not(None), VSF.lease_until < t),
            and_(VSF.owner.is_(None), VSF.enqueued_at <= t - settings.ingest_requeue_after_seconds),
        ))
    async with engine.begin() as conn:
        again = (await conn.execute(
            update(VECTOR_STORE_FILES).where(lost).values(enqueued_at=t, owner=None, lease_until=None)
            .returning(VSF.vector_store_id, VSF.id)
        )).all()
    if again:
        from core.broker import enqueue_ingest

        def send() -> None:
            for store_id, file_id in again:
                enqueue_ingest(store_id, file_id)

        await asyncio.to_thread(send)
        log.info("sweeper re-sent %d vector store file(s) for ingestion", len(again))
    return len(again)


class IngestMiddleware(dramatiq.Middleware):
    """Stops this process's ingestion at worker shutdown, before the event loop stops: the
    leases of unfinished files lapse and the sweeper sends them to another worker."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if _ingestor is None:
            return
        try:
            get_event_loop_thread().run_coroutine(close_ingestor())  # type: ignore[union-attr]
        except Exception:
            log.warning("ingestion did not stop cleanly", exc_info=True)
