"""Retrieval benchmark on SciFact (BEIR): quality per search mode, latency, ingestion speed.

    .venv/bin/python bench/retrieval.py            # test split (300 queries), the shipped settings
    .venv/bin/python bench/retrieval.py --train    # parameter sweep on the 809 train queries

The corpus goes through what the ingestion job runs (extract_text on a .txt file, chunk_text,
the embedder) and the queries through Index.search. Corpus embeddings are cached under
/tmp/assistd-cache. The dataset is read from shared/ and never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.chunk import chunk_text  # noqa: E402
from retrieval.embed import LocalEmbedder, make_embedder, normalise  # noqa: E402
from retrieval.extract import extract_text  # noqa: E402
from retrieval.index import Index  # noqa: E402
from retrieval.tokens import count_tokens  # noqa: E402

DATA = Path(os.environ.get("SCIFACT_DIR", Path(__file__).resolve().parents[2] / "shared/datasets/scifact"))
if not DATA.exists():
    DATA = Path("/work/shared/datasets/scifact")
CACHE = Path(os.environ.get("ASSISTD_CACHE", "/tmp/assistd-cache"))


@dataclass
class Corpus:
    doc_ids: list[str]
    chunk_texts: list[str]
    chunk_doc: np.ndarray  # chunk row -> doc position


def load_docs() -> list[dict[str, str]]:
    with open(DATA / "corpus.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def load_queries(split: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    qrels: dict[str, set[str]] = defaultdict(set)
    with open(DATA / "qrels" / f"{split}.tsv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels[row["query-id"]].add(row["corpus-id"])
    texts = {}
    with open(DATA / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in qrels:
                texts[q["_id"]] = q["text"]  # never q["metadata"]: it holds the gold evidence
    return texts, dict(qrels)


def ingest(docs: list[dict[str, str]], max_tokens: int = 800, overlap: int = 400) -> Corpus:
    """Each document as the file `<id>.txt` holding its title, a blank line and its abstract."""
    texts: list[str] = []
    owner: list[int] = []
    for i, doc in enumerate(docs):
        text = extract_text(f"{doc['_id']}.txt", f"{doc['title']}\n\n{doc['text']}".encode())
        for chunk in chunk_text(text, max_tokens, overlap):
            texts.append(chunk.text)
            owner.append(i)
    return Corpus([d["_id"] for d in docs], texts, np.array(owner))


def chunk_ids(corpus: Corpus) -> list[str]:
    return [f"chunk_{i}" for i in range(len(corpus.chunk_texts))]


def embed_windows_cached(corpus: Corpus, window: int, stride: int) -> dict[str, np.ndarray]:
    """Per-window summed token states of every chunk (cached): lets pooling variants be compared."""
    key = hashlib.sha256(("\x00".join(corpus.chunk_texts) + f"|{window}|{stride}").encode()).hexdigest()[:16]
    path = CACHE / f"scifact-windows-{window}-{stride}-{key}.npz"
    if path.exists():
        return dict(np.load(path))
    CACHE.mkdir(parents=True, exist_ok=True)
    emb = LocalEmbedder(window=window, stride=stride)
    sums, counts, owner = [], [], []
    started, batch = time.perf_counter(), 256
    for lo in range(0, len(corpus.chunk_texts), batch):
        s, c = emb.embed_windows(corpus.chunk_texts[lo : lo + batch])
        for j, (ss, cc) in enumerate(zip(s, c)):
            sums.append(ss)
            counts.append(cc)
            owner += [lo + j] * len(cc)
        done = min(lo + batch, len(corpus.chunk_texts))
        rate = done / (time.perf_counter() - started)
        print(f"  embedded {done}/{len(corpus.chunk_texts)} chunks, {rate:.1f} chunks/s", file=sys.stderr)
    seconds = time.perf_counter() - started
    out = {
        "sums": np.concatenate(sums).astype(np.float32),
        "counts": np.concatenate(counts).astype(np.float32),
        "owner": np.array(owner),
        "seconds": np.array(seconds),
        "chunks": np.array(len(corpus.chunk_texts)),
    }
    np.savez(path, **out)
    return out


def pool(w: dict[str, np.ndarray], n: int, how: str = "mean") -> np.ndarray:
    """Chunk vectors from cached windows: 'mean' (token-weighted, as LocalEmbedder.embed),
    'first' (truncation at one window), 'mean-normed' (mean of normalised windows)."""
    sums, counts, owner = w["sums"], w["counts"], w["owner"]
    if how == "first":
        first = np.r_[True, owner[1:] != owner[:-1]]
        return normalise(sums[first] / counts[first, None])
    if how == "mean-normed":
        vec = normalise(sums / counts[:, None])
        out = np.zeros((n, vec.shape[1]), np.float32)
        np.add.at(out, owner, vec)
        return normalise(out)
    out = np.zeros((n, sums.shape[1]), np.float32)
    np.add.at(out, owner, sums)
    tot = np.bincount(owner, weights=counts, minlength=n)
    return normalise(out / tot[:, None].astype(np.float32))


def embed_queries_cached(queries: dict[str, str]) -> dict[str, np.ndarray]:
    path = CACHE / "scifact-queries.npz"
    if path.exists():
        cached = dict(np.load(path))
        if all(q in cached for q in queries):
            return cached
    emb = LocalEmbedder()
    ids = sorted(queries)
    vecs = emb.embed([queries[q] for q in ids])
    cached = dict(np.load(path)) if path.exists() else {}
    cached.update(zip(ids, vecs))
    np.savez(path, **cached)
    return cached


def doc_ranking(rows: list[int], corpus: Corpus, depth: int = 100) -> list[str]:
    """Chunk hits -> document ids, a document ranked by its best chunk."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(corpus.doc_ids[corpus.chunk_doc[row]], None)
        if len(seen) == depth:
            break
    return list(seen)


def metrics(ranked: list[str], relevant: set[str]) -> tuple[float, float]:
    """nDCG@10 and recall@100 with binary relevance."""
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / idcg, len(relevant & set(ranked[:100])) / len(relevant)


def evaluate(
    rank: Callable[[str], list[int]], queries: dict[str, str], qrels: dict[str, set[str]], corpus: Corpus
) -> tuple[float, float]:
    pairs = [metrics(doc_ranking(rank(q), corpus), qrels[q]) for q in queries]
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def top_rows(scores: np.ndarray, k: int = 300) -> list[int]:
    part = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
    return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]


def rrf(a: np.ndarray, b: np.ndarray, k: float, depth: int = 1000) -> np.ndarray:
    out = np.zeros(len(a), np.float32)
    for s in (a, b):
        rows = top_rows(s, depth)
        out[rows] += 1.0 / (k + 1 + np.arange(len(rows)))
    return out


def sweep(docs: list[dict[str, str]], corpus: Corpus, w: dict[str, np.ndarray]) -> None:
    """Every choice on the 809 train queries; the test split is never looked at here."""
    queries, qrels = load_queries("train")
    qvec = embed_queries_cached(queries)
    n = len(corpus.chunk_texts)
    print(f"train: {len(queries)} queries  (nDCG@10 / recall@100)")
    best_pool, best = "mean", -1.0
    for how in ("first", "mean", "mean-normed"):
        vecs = pool(w, n, how)
        nd, rc = evaluate(lambda q: top_rows(vecs @ qvec[q]), queries, qrels, corpus)
        print(f"  vector, windows pooled by {how:12s} {nd:.4f} / {rc:.4f}")
        if nd > best:
            best_pool, best = how, nd
    vecs = pool(w, n, best_pool)
    best_bm25, best = (1.2, 0.75), -1.0
    indexes = {}
    for k1, b in ((1.2, 0.75), (0.9, 0.4), (1.5, 0.75), (1.2, 0.9), (2.0, 0.75)):
        index = Index(chunk_ids(corpus), corpus.chunk_texts, vecs, k1=k1, b=b)
        indexes[k1, b] = index
        nd, rc = evaluate(lambda q: top_rows(index.keyword_scores(queries[q])), queries, qrels, corpus)
        print(f"  keyword, BM25 k1={k1} b={b:<4}        {nd:.4f} / {rc:.4f}")
        if nd > best:
            best_bm25, best = (k1, b), nd
    index = indexes[best_bm25]
    kw = {q: index.keyword_scores(t) for q, t in queries.items()}
    vs = {q: index.vector_scores(qvec[q]) for q in queries}
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        nd, rc = evaluate(lambda q: top_rows(alpha * vs[q] + (1 - alpha) * kw[q]), queries, qrels, corpus)
        print(f"  hybrid, convex alpha={alpha:.2f} (kw/upper)  {nd:.4f} / {rc:.4f}")
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
        nd, rc = evaluate(
            lambda q: top_rows(
                alpha * vs[q] / max(vs[q].max(), 1e-9) + (1 - alpha) * kw[q] / max(kw[q].max(), 1e-9)
            ),
            queries,
            qrels,
            corpus,
        )
        print(f"  hybrid, convex alpha={alpha:.2f} (max-norm)  {nd:.4f} / {rc:.4f}")
    for k in (10, 30, 60, 100):
        nd, rc = evaluate(lambda q: top_rows(rrf(vs[q], kw[q], k)), queries, qrels, corpus)
        print(f"  hybrid, RRF k={k:<3}                {nd:.4f} / {rc:.4f}")
    print(f"chosen: pooling={best_pool} bm25={best_bm25}")


def blas_report() -> str:
    from threadpoolctl import threadpool_info

    parts = [
        f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} threads={i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    env = {
        k: os.environ[k]
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
        if k in os.environ
    }
    return "; ".join(parts) + (f" (env {env})" if env else " (no OPENBLAS_* overrides)")


def padded(corpus: Corpus, vecs: np.ndarray, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """`n` chunks: the real ones cycled, their vectors jittered so that no two are equal."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n) % len(corpus.chunk_texts)
    noisy = vecs[rows] + rng.normal(0, 0.02, (n, vecs.shape[1])).astype(np.float32)
    return [corpus.chunk_texts[r] for r in rows], normalise(noisy)


def latency(corpus: Corpus, vecs: np.ndarray, queries: dict[str, str], n: int, mode: str = "hybrid") -> None:
    texts, v = padded(corpus, vecs, n)
    started = time.perf_counter()
    index = Index([f"c{i}" for i in range(n)], texts, v)
    build = time.perf_counter() - started
    embedder = make_embedder(None)
    times = []
    for i, text in enumerate(list(queries.values()) * 2):
        t0 = time.perf_counter()
        index.search(text, embedder.embed([text])[0], k=20, mode=mode)
        if i >= 10:  # warm-up
            times.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    print(
        f"  {n:>7,} chunks: search+query embedding p50 {p50:5.1f} ms  p99 {p99:5.1f} ms"
        f"  ({len(times)} searches, index built in {build:.1f} s)"
    )


def throughput(corpus: Corpus, w: dict[str, np.ndarray]) -> None:
    chunks, seconds = int(w["chunks"]), float(w["seconds"])
    tokens = float(w["counts"].sum())
    print(
        f"  corpus pass (cached, nice 10): {chunks / seconds:.1f} chunks/s, {tokens / seconds:,.0f} tokens/s"
    )
    sample = corpus.chunk_texts[:128]
    embedder = LocalEmbedder()
    started = time.perf_counter()
    embedder.embed(sample)
    dt = time.perf_counter() - started
    tokens_now = sum(map(count_tokens, sample))
    print(
        f"  now, 128 chunks: {len(sample) / dt:.1f} chunks/s, {tokens_now / dt:,.0f} tokens/s"
        f" (load average {os.getloadavg()[0]:.1f})"
    )


def test_report(corpus: Corpus, w: dict[str, np.ndarray], latency_sizes: list[int]) -> None:
    queries, qrels = load_queries("test")
    qvec = embed_queries_cached(queries)
    vecs = pool(w, len(corpus.chunk_texts), "mean")  # what LocalEmbedder.embed returns
    index = Index(chunk_ids(corpus), corpus.chunk_texts, vecs)
    print(f"test: {len(queries)} queries, {len(corpus.chunk_texts)} chunks  (nDCG@10 / recall@100)")
    for mode in ("keyword", "vector", "hybrid"):
        nd, rc = evaluate(
            lambda q: [r for r, _ in index.search(queries[q], qvec[q], k=300, mode=mode)],
            queries,
            qrels,
            corpus,
        )
        print(f"  {mode:8s} {nd:.4f} / {rc:.4f}")
    print(f"BLAS: {blas_report()}")
    print("latency (hybrid, k=20, query embedded by the local model inside the timing):")
    for n in latency_sizes:
        latency(corpus, vecs, queries, n)
    print("ingestion (local model):")
    throughput(corpus, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="sweep the parameters on the train split")
    ap.add_argument("--embed-only", action="store_true", help="fill the embedding cache and stop")
    ap.add_argument("--sizes", default="10000,100000", help="index sizes for the latency runs")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=254)
    args = ap.parse_args()
    docs = load_docs()
    corpus = ingest(docs)
    print(f"{len(docs)} documents -> {len(corpus.chunk_texts)} chunks", file=sys.stderr)
    w = embed_windows_cached(corpus, args.window, args.stride)
    print(f"embedding: {int(w['chunks'])} chunks in {float(w['seconds']):.0f} s", file=sys.stderr)
    if args.embed_only:
        return
    if args.train:
        sweep(docs, corpus, w)
        return
    test_report(corpus, w, [int(n) for n in args.sizes.split(",") if n])


if __name__ == "__main__":
    main()
