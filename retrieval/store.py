"""Search over vector stores: a store's chunks and vectors are read from the database once into
an in-memory `retrieval.index.Index`, cached per (store id, version) in the process that
searches (the API for the search endpoint, a worker for the file_search tool). Every change to
a store's files bumps its version (retrieval/catalog.py), so a query reads one row to know its
cached index is current and never re-reads the chunks.

The search is exact (every vector is scored, with keyword scores blended in by the Index); it
runs the same on SQLite and PostgreSQL. pgvector / sqlite-vec are not used.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.models import FILE_CHUNKS, FILES, VECTOR_STORE_FILES
from retrieval.embed import Embedder, make_embedder
from retrieval.filters import Predicate

VSF, CHUNKS = VECTOR_STORE_FILES.c, FILE_CHUNKS.c
# What one search may cost, whatever the callers let through (the API's cap is a setting): at
# most QUERIES queries, of which the first QUERY_CHARS characters are read (within the 8,192
# tokens OpenAI's embedding models take, for most text); BM25 scores a query's first
# retrieval.keywords.QUERY_TERMS distinct words and the local model embeds its first
# QUERY_PIECES word pieces, one forward pass. Unbounded, a 1 MB query took minutes of CPU,
# nearly all of it in the embedding.
QUERIES = 10
QUERY_CHARS = 8192
QUERY_PIECES = 254


@dataclass(frozen=True)
class Hit:
    """One matching chunk."""

    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict[str, Any]


@dataclass
class Loaded:
    """A store's searchable state: row i of the index is chunk texts[i] of files[row_file[i]]."""

    version: int
    index: Any
    texts: list[str]
    row_file: np.ndarray
    files: list[tuple[str, str, dict[str, Any]]]  # (file_id, filename, attributes)


@functools.lru_cache(maxsize=16)
def _embedder(model: str, base_url: str | None, api_key: str | None) -> Embedder:
    return make_embedder(model, base_url, api_key)


def embedder_for(settings: Settings, model: str, endpoint: str | None) -> Embedder:
    """The embedder of a store's recorded model (one per process and model)."""
    key = settings.embeddings_api_key or settings.openai_api_key
    return _embedder(model, endpoint, key)


def store_endpoint(settings: Settings) -> str | None:
    """The endpoint recorded with a new store: where its (non-local) model is served."""
    return settings.embeddings_base_url or settings.openai_base_url


def _build(version: int, rows: list[Any]) -> Loaded:
    from retrieval.index import Index

    files: list[tuple[str, str, dict[str, Any]]] = []
    where: dict[str, int] = {}
    row_file = np.empty(len(rows), np.int32)
    for i, r in enumerate(rows):
        if r.id not in where:
            where[r.id] = len(files)
            files.append((r.id, r.filename or r.id, r.attributes or {}))
        row_file[i] = where[r.id]
    texts = [r.text for r in rows]
    dim = len(rows[0].vector) // 4 if rows else 0
    vectors = np.frombuffer(b"".join(r.vector for r in rows), np.float32).reshape(len(rows), dim)
    ids = [f"{r.id}:{r.position}" for r in rows]
    return Loaded(version, Index(ids, texts, vectors), texts, row_file, files)


async def _load(engine: AsyncEngine, store_id: str, version: int) -> Loaded:
    query = (
        select(VSF.id, FILES.c.filename, VSF.attributes, CHUNKS.position, CHUNKS.text, CHUNKS.vector)
        .select_from(VECTOR_STORE_FILES.join(FILE_CHUNKS, CHUNKS.content_key == VSF.content_key))
        .outerjoin(FILES, FILES.c.id == VSF.id)
        .where(VSF.vector_store_id == store_id, VSF.status == "completed")
        .order_by(VSF.seq, CHUNKS.position)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    return await asyncio.to_thread(_build, version, rows)


class IndexCache:
    """The most recently used stores' indexes, one entry per store at its newest loaded version."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[str, Loaded] = OrderedDict()
        self.guard = threading.Lock()  # the API and an embedded worker search from different loops
        self.loading: dict[tuple[int, str], asyncio.Lock] = {}

    def _get(self, store_id: str, version: int) -> Loaded | None:
        with self.guard:
            hit = self.entries.get(store_id)
            if hit is None or hit.version < version:
                return None
            self.entries.move_to_end(store_id)
            return hit

    async def get(self, engine: AsyncEngine, store: Any) -> Loaded:
        hit = self._get(store.id, store.version)
        if hit is not None:
            return hit
        key = (id(asyncio.get_running_loop()), store.id)
        lock = self.loading.setdefault(key, asyncio.Lock())
        async with lock:  # one load per store at a time; the others wait and reuse it
            hit = self._get(store.id, store.version)
            if hit is None:
                hit = await _load(engine, store.id, store.version)
                with self.guard:
                    self.entries[store.id] = hit
                    self.entries.move_to_end(store.id)
                    while len(self.entries) > self.size:
                        self.entries.popitem(last=False)
        self.loading.pop(key, None)
        return hit


_cache: IndexCache | None = None


def cache(settings: Settings) -> IndexCache:
    """This process's index cache."""
    global _cache
    if _cache is None:
        _cache = IndexCache(settings.search_cache_stores)
    return _cache


def _search_one(
    loaded: Loaded,
    queries: Sequence[str],
    vectors: np.ndarray,
    k: int,
    predicate: Predicate | None,
    alpha: float | None = None,
) -> dict[int, float]:
    if not loaded.texts:
        return {}
    allowed = None
    if predicate is not None:
        ok = np.array([predicate(attrs) for _, _, attrs in loaded.files], bool)
        allowed = ok[loaded.row_file]
        if not allowed.any():
            return {}
    best: dict[int, float] = {}
    for query, vector in zip(queries, vectors):
        for pos, score in loaded.index.search(
            query, vector, k=k, mode="hybrid", allowed=allowed, alpha=alpha
        ):
            best[pos] = max(best.get(pos, 0.0), float(score))
    return best


def _embed_and_search(
    embedder: Embedder,
    vectors: np.ndarray | None,
    loaded: Loaded,
    queries: Sequence[str],
    k: int,
    predicate: Predicate | None,
    alpha: float | None,
) -> tuple[np.ndarray, dict[int, float]]:
    if vectors is None:
        vectors = embedder.embed(list(queries), max_tokens=QUERY_PIECES)
    return vectors, _search_one(loaded, queries, vectors, k, predicate, alpha)


async def search(
    engine: AsyncEngine,
    settings: Settings,
    stores: Sequence[Any],
    queries: Sequence[str],
    k: int,
    predicate: Predicate | None = None,
    score_threshold: float = 0.0,
    alpha: float | None = None,
) -> list[Hit]:
    """The best `k` chunks of these stores for any of `queries`, best first.

    Queries are embedded here, in the calling process, once per embedding model. `alpha`: the
    embedding's weight in the hybrid score (file_search's `hybrid_search` weights), else the index's.
    """
    queries = [q[:QUERY_CHARS] for q in queries if q.strip()][:QUERIES]
    if not queries or not stores:
        return []
    vectors: dict[tuple[str, str | None], np.ndarray] = {}
    hits: list[Hit] = []
    for store in stores:
        model = (store.embedding_model, store.embedding_endpoint)
        loaded = await cache(settings).get(engine, store)
        if not loaded.texts:
            continue
        embedder = embedder_for(settings, *model)
        # one hop to a thread for both the queries' embedding and the search
        vectors[model], best = await asyncio.to_thread(
            _embed_and_search, embedder, vectors.get(model), loaded, queries, k, predicate, alpha
        )
        for pos, score in best.items():
            if score >= score_threshold:
                file_id, filename, attrs = loaded.files[loaded.row_file[pos]]
                hits.append(Hit(file_id, filename, round(score, 6), loaded.texts[pos], attrs))
    hits.sort(key=lambda h: -h.score)
    return hits[:k]
