"""In-memory search over one vector store's chunks: BM25, cosine similarity, or both fused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.keywords import BM25

MODES = ("hybrid", "vector", "keyword")
# Chosen on SciFact's 809 train queries (bench/retrieval.py --train).
HYBRID_ALPHA = 0.4  # weight of the cosine side in the hybrid score (train sweep: 0.3-0.8)
BM25_K1, BM25_B = 1.2, 0.75


class Index:
    """Built once per (vector store, version); read-only afterwards, so safe to share.

    Every score lies in [0, 1], as OpenAI's `score_threshold` expects:
    - vector: the cosine similarity, clipped at 0;
    - keyword: BM25 over the largest BM25 the query's terms allow (1.0 = every query term
      present and saturated);
    - hybrid: HYBRID_ALPHA * vector + (1 - HYBRID_ALPHA) * keyword, over all rows.
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
        *,
        alpha: float = HYBRID_ALPHA,
        k1: float = BM25_K1,
        b: float = BM25_B,
    ) -> None:
        if not len(ids) == len(texts) == len(vectors):
            raise ValueError("ids, texts and vectors must have one entry per chunk")
        self.ids = list(ids)
        # Column-major: OpenBLAS's matrix-vector product streams this layout about twice as
        # fast as rows (a 100,000-chunk store is 154 MB to read per query).
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2:
            vectors = vectors.reshape(len(self.ids), -1)
        self.vectors = np.asfortranarray(vectors)
        self.alpha = alpha
        self.bm25 = BM25(texts, k1=k1, b=b)

    def __len__(self) -> int:
        return len(self.ids)

    def keyword_scores(self, query: str) -> np.ndarray:
        terms = self.bm25.query_terms(query)
        upper = self.bm25.upper_bound(terms)
        scores = self.bm25.scores(terms)
        if upper > 0:
            scores /= upper
        return scores

    def vector_scores(self, query_vector: np.ndarray) -> np.ndarray:
        q = np.asarray(query_vector, np.float32).reshape(-1)
        if q.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query vector has {q.shape[0]} dimensions, the index {self.vectors.shape[1]}")
        scores = self.vectors @ q
        return np.maximum(scores, 0.0, out=scores)

    def scores(
        self, query: str, query_vector: np.ndarray | None, mode: str, alpha: float | None = None
    ) -> np.ndarray:
        """Dense (n,) scores of every row; -1 marks rows that must not be returned. `alpha`: the
        embedding's weight in a hybrid score (the keywords' is 1 - alpha); the index's own if None."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if mode == "vector" or (mode == "hybrid" and query_vector is not None):
            if query_vector is None:
                raise ValueError("vector search needs a query vector")
            scores = self.vector_scores(query_vector)
            if mode == "hybrid":
                weight = self.alpha if alpha is None else alpha
                scores *= weight
                scores += (1.0 - weight) * self.keyword_scores(query)
            return scores
        kw = self.keyword_scores(query)
        return np.where(kw > 0, kw, np.float32(-1.0))

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 20,
        mode: str = "hybrid",
        allowed: np.ndarray | None = None,
        alpha: float | None = None,
    ) -> list[tuple[int, float]]:
        """The best `k` rows as (row position, score in [0, 1]), best first.

        `allowed` is a boolean mask over the rows (those passing attribute filters). Hybrid
        without a query vector falls back to keyword search; keyword search returns only rows
        that share a term with the query.
        """
        if k <= 0 or not len(self.ids):
            return []
        scores = self.scores(query, query_vector, mode, alpha)
        np.nan_to_num(scores, copy=False, nan=-1.0)  # a bad remote vector: never a result, nor a bound
        if allowed is not None:
            mask = np.asarray(allowed, bool)
            if mask.shape != scores.shape:
                raise ValueError("allowed must be a boolean mask with one entry per row")
            scores = np.where(mask, scores, np.float32(-1.0))
        top = _top_k(scores, k)
        return [(int(i), float(min(scores[i], 1.0))) for i in top if scores[i] >= 0]


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, largest first (ties by position)."""
    rows = _candidates(scores, k)
    if len(rows) > k:
        values = scores[rows]
        kth = np.partition(values, len(rows) - k)[len(rows) - k]
        above = rows[values > kth]
        rows = np.concatenate([above, rows[values == kth][: k - len(above)]])  # rows are ascending
    return rows[np.lexsort((rows, -scores[rows]))]


def _candidates(scores: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    """Positions that may be among the k largest: a superset, usually a few times k.

    At least k rows reach the k-th largest of the blocks' maxima (its block's and the larger
    ones'), so every row of the top k does too. This takes a tenth of the time of an
    argpartition over every row (1 ms at 100,000).
    """
    blocks = len(scores) // block
    if blocks <= k:
        return np.arange(len(scores))
    peaks = scores[: blocks * block].reshape(blocks, block).max(1)
    floor = np.partition(peaks, blocks - k)[blocks - k]
    return np.flatnonzero(scores >= floor)
