from __future__ import annotations

import numpy as np
import pytest

from retrieval.embed import make_embedder
from retrieval.index import Index

DOCS = [
    "The mitochondria is the powerhouse of the cell and produces ATP.",
    "Refunds are issued within fourteen days of a returned purchase.",
    "Our office is closed on public holidays and weekends.",
    "Error code E42 means the printer cartridge is empty.",
    "Cats are small domesticated carnivorous mammals.",
]


@pytest.fixture(scope="module")
def index() -> Index:
    vectors = make_embedder(None).embed(DOCS)
    return Index([f"c{i}" for i in range(len(DOCS))], DOCS, vectors)


def qv(text: str) -> np.ndarray:
    return make_embedder(None).embed([text])[0]


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
def test_modes_find_the_right_chunk(index: Index, mode: str) -> None:
    query = "how long until I get my money back for a return"
    if mode == "keyword":
        query = "refunds for returned purchases"  # stems: refund, return, purchas
    hits = index.search(query, qv(query), k=3, mode=mode)
    assert hits[0][0] == 1
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_keyword_search_needs_a_shared_term(index: Index) -> None:
    hits = index.search("printer E42", None, k=5, mode="keyword")
    assert [row for row, _ in hits] == [3]
    assert index.search("zebra xylophone", None, k=5, mode="keyword") == []


def test_keyword_scores_are_normalised(index: Index) -> None:
    ((row, score),) = index.search("cats mammals", None, k=1, mode="keyword")
    assert row == 4 and 0.3 < score <= 1.0


def test_hybrid_without_vector_is_keyword(index: Index) -> None:
    assert index.search("printer", None, mode="hybrid") == index.search("printer", None, mode="keyword")


def test_vector_mode_needs_a_vector(index: Index) -> None:
    with pytest.raises(ValueError):
        index.search("x", None, mode="vector")
    with pytest.raises(ValueError):
        index.search("x", np.ones(3, np.float32), mode="vector")
    with pytest.raises(ValueError):
        index.search("x", qv("x"), mode="semantic")


def test_allowed_mask(index: Index) -> None:
    query = "refund for a returned purchase"
    allowed = np.array([True, False, True, True, True])
    hits = index.search(query, qv(query), k=5, allowed=allowed)
    assert 1 not in [row for row, _ in hits] and len(hits) == 4
    assert index.search(query, qv(query), allowed=np.zeros(5, bool)) == []
    with pytest.raises(ValueError):
        index.search(query, qv(query), allowed=np.ones(3, bool))


def test_k_limits_results(index: Index) -> None:
    assert len(index.search("cell", qv("cell"), k=2)) == 2
    assert len(index.search("cell", qv("cell"), k=50)) == len(DOCS)
    assert index.search("cell", qv("cell"), k=0) == []


def test_empty_index() -> None:
    empty = Index([], [], np.zeros((0, 384), np.float32))
    assert empty.search("anything", np.ones(384, np.float32)) == []


@pytest.mark.parametrize("kind", ["distinct", "ties", "few positive"])
def test_top_k_is_a_full_sort_cut_at_k(kind: str) -> None:
    from retrieval.index import _top_k

    rng = np.random.default_rng(7)
    for _ in range(200):
        n, k = int(rng.integers(1, 5000)), int(rng.integers(1, 60))
        if kind == "distinct":
            scores = rng.random(n, dtype=np.float32)
        elif kind == "ties":
            scores = rng.integers(-1, 4, n).astype(np.float32)
        else:
            scores = np.where(rng.random(n) < 0.005, rng.random(n), -1.0).astype(np.float32)
        full = np.lexsort((np.arange(n), -scores))  # best first, ties by position
        np.testing.assert_array_equal(_top_k(scores, k), full[:k])


def test_vector_scores_of_a_row_major_matrix() -> None:
    # the index keeps its vectors column-major; the scores are the plain row dot products
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((1000, 16)).astype(np.float32)
    q = rng.standard_normal(16).astype(np.float32)
    index = Index([str(i) for i in range(1000)], ["x"] * 1000, rows)
    np.testing.assert_allclose(index.vector_scores(q), np.maximum(rows.astype(np.float64) @ q, 0), atol=1e-5)


def test_a_nan_vector_is_never_a_result_nor_hides_others() -> None:
    """A remote endpoint's bad vector (NaN) must not cut the top k short."""
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((300, 16)).astype(np.float32)
    rows[7] = np.nan
    index = Index([str(i) for i in range(300)], ["x"] * 300, rows)
    hits = index.search("x", rows[0], k=5, mode="vector")
    assert len(hits) == 5 and 7 not in [i for i, _ in hits]
