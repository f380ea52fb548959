from __future__ import annotations

import math

import numpy as np
import pytest

from retrieval.keywords import BM25, Analyzer


def test_analyzer_stems_and_drops_stop_words() -> None:
    assert Analyzer().terms("The running dogs ran into THE gardens, a x") == ["run", "dog", "ran", "garden"]


def test_bm25_matches_the_lucene_formula() -> None:
    texts = ["apple banana apple", "banana cherry", "cherry date elderberry fig"]
    bm = BM25(texts, k1=1.2, b=0.75)
    terms = bm.query_terms("apple")
    avg = (3 + 2 + 4) / 3
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / avg))
    scores = bm.scores(terms)
    assert scores[0] == pytest.approx(expected, rel=1e-5)
    assert scores[1] == scores[2] == 0
    assert bm.upper_bound(terms) == pytest.approx(idf)


def test_unknown_and_repeated_query_terms() -> None:
    bm = BM25(["apple pie", "cherry pie"])
    assert list(bm.query_terms("apples apple zucchini")) == [bm.vocab["appl"]]
    assert not bm.scores(bm.query_terms("zucchini")).any()
    np.testing.assert_array_equal(BM25([]).scores(np.array([], np.int64)), np.zeros(0))
