"""BM25 keyword scoring, Lucene-style: lower-cased words, English stop words, Snowball stems."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import snowballstemmer
from scipy import sparse

# Lucene's EnglishAnalyzer stop set.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there"
    " these they this to was will with".split()
)
WORD = re.compile(r"(?u)\b\w\w+\b")
# Distinct words of a query that are scored (Lucene's default limit on a query's clauses): a
# query of a million distinct words cost 17 s of stemming, and grew the index's memo for good.
QUERY_TERMS = 1024


class Analyzer:
    """Text -> stemmed terms. Stems are memoised: a corpus has few distinct words."""

    def __init__(self) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._stems: dict[str, str | None] = {}

    def stem(self, word: str, remember: bool = True) -> str | None:
        stem = self._stems.get(word, "")
        if stem == "":
            stem = None if word in STOPWORDS else self._stemmer.stemWord(word)
            if remember:
                self._stems[word] = stem
        return stem

    def terms(self, text: str) -> list[str]:
        stems = map(self.stem, WORD.findall(text.lower()))
        return [s for s in stems if s]


class BM25:
    """An inverted index whose postings hold each (term, row)'s BM25 weight, idf included.

    Scores follow Lucene: idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
    tf / (tf + k1 * (1 - b + b * len / avglen)). A term's weight never exceeds its idf, so
    `score / upper_bound(query)` lies in [0, 1].
    """

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.analyzer = Analyzer()
        self.vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for row, text in enumerate(texts):
            ids = [self.vocab.setdefault(t, len(self.vocab)) for t in self.analyzer.terms(text)]
            rows += ids
            cols += [row] * len(ids)
        n = len(texts)
        self.n = n
        tf = sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (np.array(rows, np.int64), np.array(cols, np.int64))),
            shape=(len(self.vocab), n),
        )
        tf.sum_duplicates()
        lengths = np.asarray(tf.sum(axis=0)).ravel()
        df = np.diff(tf.indptr)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()) if n else 1.0, 1e-9))
        data = tf.data / (tf.data + norm[tf.indices])
        data *= np.repeat(self.idf, df)
        self.indptr, self.indices, self.data = tf.indptr, tf.indices, data.astype(np.float32)

    def query_terms(self, query: str) -> np.ndarray:
        """Distinct known term ids of the query's first `QUERY_TERMS` distinct words."""
        words: dict[str, None] = {}
        for match in WORD.finditer(query.lower()):
            words[match.group()] = None
            if len(words) == QUERY_TERMS:
                break
        # a query's words are not remembered: the memo would grow with every search of a cached index
        stems = (self.analyzer.stem(w, remember=False) for w in words)
        ids = {self.vocab.get(s, -1) for s in stems if s}
        ids.discard(-1)
        return np.array(sorted(ids), np.int64)

    def scores(self, terms: np.ndarray) -> np.ndarray:
        """Dense (n,) BM25 scores of every row for the given term ids."""
        if not len(terms) or not self.n:
            return np.zeros(self.n, np.float32)
        starts, ends = self.indptr[terms], self.indptr[terms + 1]
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
        return np.bincount(self.indices[take], weights=self.data[take], minlength=self.n).astype(np.float32)

    def upper_bound(self, terms: np.ndarray) -> float:
        """The largest score any row could reach for these terms."""
        return float(self.idf[terms].sum()) if len(terms) else 0.0
