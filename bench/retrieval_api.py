"""Vector stores through the HTTP API, distributed mode (API + workers, PostgreSQL, Redis), on SciFact.

    .venv/bin/python bench/retrieval_api.py [--parts search,local,remote,busy] [--local-files 300]

- search: POST /v1/vector_stores/{id}/search over HTTP (the query embedded by the local MiniLM in
  the API process, inside the timing) on stores of 10k and 100k chunks. Those stores are padding
  written straight into the tables ingestion writes (vector_stores, files, vector_store_files,
  file_chunks): SciFact's chunks cycled, with their MiniLM vectors from bench/retrieval.py's cache
  jittered as its latency part does, 20 chunks per file. The store records MiniLM as its model,
  so the API embeds queries with it.
- local: `--local-files` abstracts uploaded as .txt files, one file batch, polled until
  `completed`, with the default local model; against the raw LocalEmbedder throughput on the
  same chunk texts, measured first in this process.
- remote: 5,000 abstracts as files, embedded by the scripted model's /v1/embeddings (zero
  latency), so the pipeline is the bound. Files are uploaded 8 at a time, then sent in file
  batches of 2,000; with `--overlap`, a batch of 500 is sent as soon as its 500 files are
  uploaded, while the next ones upload. Batches -> completed = from the last upload; end to
  end = first upload -> last batch completed.
- busy: search p50 on the 100k store while another 5,000 files (other bytes) are ingested into
  another store, against the idle p50 measured just before. The workers run ingestion at their
  default priority (`ASSISTD_INGEST_NICE`); `--worker-nice` renices the whole worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrieval import (  # noqa: E402
    Corpus,
    blas_report,
    embed_windows_cached,
    ingest,
    load_docs,
    load_queries,
    padded,
    pool,
)
from bench.runs import BENCH_ENV  # noqa: E402
from tests.procs import KEY_A, Server, start_distributed, start_model, stop  # noqa: E402

HEADERS = {"Authorization": f"Bearer {KEY_A}"}
PER_FILE = 20
LOCAL_MODEL = "all-MiniLM-L6-v2"


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def pcts(ms: list[float]) -> str:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:5.1f} ms  p90 {p90:5.1f} ms  p99 {p99:5.1f} ms  ({len(ms)} searches)"


# --- padding stores, written straight into the tables -------------------------------------------


def padded_store(server: Server, corpus: Corpus, vecs: np.ndarray, n: int) -> str:
    """A completed MiniLM store of `n` chunks, `PER_FILE` to a file; its id."""
    from sqlalchemy import create_engine, insert

    from core.ids import new_id, now, seq
    from core.models import FILES, NO_FILES, VECTOR_STORE_FILES, VECTOR_STORES

    chunk_texts, v = padded(corpus, vecs, n)
    store_id, t = new_id("vs"), now()
    files = [new_id("file-") for _ in range((n + PER_FILE - 1) // PER_FILE)]
    usage = [0] * len(files)
    url = server.env["ASSISTD_DATABASE_URL"]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY file_chunks (content_key, position, text, vector) FROM STDIN") as copy:
            for i in range(n):
                f, vec = i // PER_FILE, v[i].astype("<f4").tobytes()
                usage[f] += len(chunk_texts[i]) + len(vec)
                copy.write_row((f"pad-{store_id}-{f}", i % PER_FILE, chunk_texts[i], vec))
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    counts = NO_FILES | {"completed": len(files), "total": len(files)}
    with engine.begin() as conn:
        conn.execute(
            insert(VECTOR_STORES).values(
                id=store_id,
                project="proj_a",
                seq=seq(),
                created_at=t,
                name=f"padding {n}",
                last_active_at=t,
                usage_bytes=sum(usage),
                file_counts=counts,
                embedding_model=LOCAL_MODEL,
                version=1,
            )
        )
        conn.execute(
            insert(FILES),
            [
                dict(
                    id=f,
                    project="proj_a",
                    seq=seq(),
                    created_at=t,
                    filename=f"pad{i}.txt",
                    purpose="assistants",
                    bytes=u,
                    status="processed",
                )
                for i, (f, u) in enumerate(zip(files, usage))
            ],
        )
        conn.execute(
            insert(VECTOR_STORE_FILES),
            [
                dict(
                    vector_store_id=store_id,
                    id=f,
                    project="proj_a",
                    seq=seq(),
                    created_at=t,
                    status="completed",
                    usage_bytes=u,
                    content_key=f"pad-{store_id}-{i}",
                    attempts=1,
                )
                for i, (f, u) in enumerate(zip(files, usage))
            ],
        )
    engine.dispose()
    return store_id


# --- search over HTTP --------------------------------------------------------------------------


def search_once(client: httpx.Client, store_id: str, text: str) -> float:
    t0 = time.perf_counter()
    resp = client.post(f"/v1/vector_stores/{store_id}/search", json={"query": text, "max_num_results": 20})
    resp.raise_for_status()
    assert resp.json()["data"], "no hits"
    return (time.perf_counter() - t0) * 1000


def search_latency(server: Server, store_id: str, queries: list[str], warmup: int = 10) -> list[float]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=600) as client:
        return [ms for i, q in enumerate(queries) if (ms := search_once(client, store_id, q)) and i >= warmup]


def first_search(server: Server, store_id: str, query: str) -> float:
    """The search that loads the store into the API's index cache (seconds)."""
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=600) as client:
        return search_once(client, store_id, query) / 1000


# --- ingestion through the API -----------------------------------------------------------------


def documents(docs: list[dict[str, str]], tag: str = "") -> list[tuple[str, bytes]]:
    """Each abstract as `<id>.txt` (title, blank line, abstract), as bench/retrieval.py ingests it;
    `tag` appended as a last line makes other bytes, so the embed-once cache does not apply."""
    return [(f"{d['_id']}.txt", f"{d['title']}\n\n{d['text']}{tag}".encode()) for d in docs]


async def upload_and_ingest(
    server: Server,
    files: list[tuple[str, bytes]],
    batch: int = 2000,
    concurrency: int = 8,
    overlap: bool = False,
) -> dict[str, Any]:
    """Upload `files` (`concurrency` at a time), then attach them in file batches of `batch`
    and poll the batches until none is in_progress. `overlap`: each batch is sent as soon as
    its files are uploaded."""
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=600, limits=limits) as client:
        store = (await client.post("/v1/vector_stores", json={"name": "bench"})).json()["id"]
        sem = asyncio.Semaphore(concurrency)
        last_upload = [0.0]

        async def upload(name: str, data: bytes) -> str:
            async with sem:
                resp = await client.post(
                    "/v1/files", files={"file": (name, data, "text/plain")}, data={"purpose": "assistants"}
                )
                resp.raise_for_status()
                last_upload[0] = time.perf_counter()
                return str(resp.json()["id"])

        async def send(ids: list[str]) -> str:
            resp = await client.post(f"/v1/vector_stores/{store}/file_batches", json={"file_ids": ids})
            resp.raise_for_status()
            return str(resp.json()["id"])

        async def upload_then_send(part: list[tuple[str, bytes]]) -> str:
            return await send(list(await asyncio.gather(*(upload(*f) for f in part))))

        started = time.perf_counter()
        if overlap:
            batches = list(
                await asyncio.gather(
                    *(upload_then_send(files[lo : lo + batch]) for lo in range(0, len(files), batch))
                )
            )
            uploaded = last_upload[0]
        else:
            ids = await asyncio.gather(*(upload(*f) for f in files))
            uploaded = time.perf_counter()
            batches = [await send(ids[lo : lo + batch]) for lo in range(0, len(ids), batch)]
        while True:
            got = [(await client.get(f"/v1/vector_stores/{store}/file_batches/{b}")).json() for b in batches]
            if all(g["status"] != "in_progress" for g in got):
                break
            await asyncio.sleep(0.1)
        done = time.perf_counter()
    counts = {k: sum(g["file_counts"][k] for g in got) for k in ("completed", "failed", "total")}
    wall = time.time()  # epoch times of the phases, to match against other tools' samples
    return {
        "store": store,
        "upload_s": uploaded - started,
        "ingest_s": done - uploaded,
        "wall_s": done - started,
        "epoch": (wall - (done - started), wall - (done - uploaded), wall),
        "counts": counts,
        "chunks": stored_chunks(server, store),
        "uploaded_at": uploaded,
        "done_at": done,
    }


def stored_chunks(server: Server, store_id: str) -> int:
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM vector_store_files f JOIN file_chunks c "
            "ON c.content_key = f.content_key WHERE f.vector_store_id = %s",
            (store_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def ingest_report(name: str, r: dict[str, Any]) -> tuple[float, float]:
    """Chunks/s end to end (first upload -> batches completed) and from the batches' creation."""
    c = r["counts"]
    e2e, pipeline = r["chunks"] / r["wall_s"], r["chunks"] / r["ingest_s"]
    print(
        f"  {name}: {c['total']} files ({c['completed']} completed, {c['failed']} failed), {r['chunks']} chunks"
    )
    print(
        f"    upload {r['upload_s']:.1f} s ({c['total'] / r['upload_s']:.0f} files/s), then batches -> completed "
        f"{r['ingest_s']:.1f} s ({pipeline:.1f} chunks/s); end to end {e2e:.1f} chunks/s ({load()})"
    )
    print(
        "    phases (epoch s): upload from {:.1f}, batches from {:.1f}, completed at {:.1f}".format(
            *r["epoch"]
        )
    )
    return e2e, pipeline


# --- the parts ---------------------------------------------------------------------------------


def part_local(tmp: Path, model: Any, docs: list[dict[str, str]], n: int, workers: int) -> None:
    from retrieval.embed import LocalEmbedder

    chosen = docs[:n]
    texts = [c for c in ingest(chosen).chunk_texts]
    print(f"\nlocal model ingestion: {n} abstracts, {len(texts)} chunks, {workers} worker(s)")
    embedder = LocalEmbedder()
    t0 = time.perf_counter()
    embedder.embed(texts)
    batched = len(texts) / (time.perf_counter() - t0)
    print(f"  raw LocalEmbedder.embed, all texts in one call: {batched:.2f} chunks/s ({load()})")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool2:  # what two ingestion slots do: one text per call, two at once
        list(pool2.map(lambda t: embedder.embed([t]), texts))
    single = len(texts) / (time.perf_counter() - t0)
    print(f"  raw LocalEmbedder.embed, one text per call in 2 threads: {single:.2f} chunks/s ({load()})")
    raw = max(batched, single)
    server = start_distributed(model, tmp / "local", workers=workers, extra=env(tmp / "local"))
    try:
        r = asyncio.run(upload_and_ingest(server, documents(chosen)))
    finally:
        stop(server.procs)
    rate, _ = ingest_report("through the API", r)
    verdict = "PASS" if rate >= 0.8 * raw else "FAIL"
    print(f"  end to end / raw = {rate / raw:.2f} (target >= 0.80): {verdict}")


EXTRA: dict[str, str] = {}  # --env KEY=VALUE


def env(path: Path, remote: str | None = None) -> dict[str, str]:
    path.mkdir(parents=True, exist_ok=True)
    out = BENCH_ENV | {"ASSISTD_FILES_DIR": str(path)} | EXTRA
    if remote:
        out |= {"ASSISTD_EMBEDDINGS_MODEL": "embed", "ASSISTD_EMBEDDINGS_BASE_URL": f"{remote}/v1"}
    return out


def renice_workers(server: Server, niceness: int) -> None:
    """Lower the workers' CPU priority (every thread: Linux nices threads, new ones inherit it)."""
    for proc in server.procs[1:]:
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)


def busy_search(
    server: Server, store_id: str, queries: list[str], files: list[tuple[str, bytes]]
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Searches while `files` are uploaded, then ingested: the latencies of each phase."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(asyncio.run(upload_and_ingest(server, files))))
    thread.start()
    timed: list[tuple[float, float]] = []
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=600) as client:
        while thread.is_alive():
            for q in queries:
                timed.append((time.perf_counter(), search_once(client, store_id, q)))
                if not thread.is_alive():
                    break
    thread.join()
    uploading = [ms for t, ms in timed if t < result["uploaded_at"]]
    ingesting = [ms for t, ms in timed if result["uploaded_at"] <= t < result["done_at"] - 0.5]
    return uploading, ingesting, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="search,local,remote,busy")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--local-files", type=int, default=300)
    ap.add_argument("--remote-files", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="renice the whole worker processes for the busy part (ingestion itself runs at ASSISTD_INGEST_NICE)",
    )
    ap.add_argument(
        "--overlap", action="store_true", help="remote: also send each batch of 500 as soon as it is uploaded"
    )
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the servers (repeatable)")
    args = ap.parse_args()
    EXTRA.update(kv.split("=", 1) for kv in args.env)
    parts = set(args.parts.split(","))
    print(f"machine: {machine()}; {load()}")
    print(f"BLAS (this process): {blas_report()}")
    docs = load_docs()
    queries = list(load_queries("test")[0].values())
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-vs-"))
    model, model_proc = start_model(tmp)
    try:
        if "local" in parts:
            part_local(tmp, model, docs, args.local_files, args.workers)
        if parts & {"search", "remote", "busy"}:
            part_remote(tmp, model, docs, queries, args, parts)
    finally:
        stop([model_proc])


def part_remote(
    tmp: Path,
    model: Any,
    docs: list[dict[str, str]],
    queries: list[str],
    args: argparse.Namespace,
    parts: set[str],
) -> None:
    server = start_distributed(
        model, tmp / "remote", workers=args.workers, extra=env(tmp / "remote", model.url)
    )
    try:
        stores: dict[int, str] = {}
        if parts & {"search", "busy"}:
            corpus = ingest(docs)
            vecs = pool(embed_windows_cached(corpus, 256, 254), len(corpus.chunk_texts), "mean")
            print(
                "\nsearch through the API (hybrid, max_num_results 20, query embedded by MiniLM in the API):"
            )
            for n in [int(s) for s in args.sizes.split(",")]:
                t0 = time.perf_counter()
                stores[n] = padded_store(server, corpus, vecs, n)
                written = time.perf_counter() - t0
                first = first_search(server, stores[n], queries[0])
                ms = search_latency(server, stores[n], queries * 2)
                print(
                    f"  {n:>7,} chunks: {pcts(ms)}  (rows written in {written:.1f} s, first search "
                    f"loading the index {first:.1f} s; {load()})"
                )
        if "remote" in parts:
            print(
                f"\ningestion, external embeddings endpoint (scripted model, 0 ms), {args.workers} worker(s):"
            )
            e2e, pipeline = ingest_report(
                "through the API",
                asyncio.run(upload_and_ingest(server, documents(docs[: args.remote_files]))),
            )
            if args.overlap:
                print("  again, each batch of 500 sent as soon as its files are uploaded (--overlap):")
                e2e, _ = ingest_report(
                    "through the API",
                    asyncio.run(
                        upload_and_ingest(
                            server,
                            documents(docs[: args.remote_files], "\n(overlap)"),
                            batch=500,
                            overlap=True,
                        )
                    ),
                )
            print(
                f"  target >= 300 chunks/s: end to end {'PASS' if e2e >= 300 else 'FAIL'}, "
                f"batches -> completed {'PASS' if pipeline >= 300 else 'FAIL'}"
            )
        if "busy" in parts:
            big = stores[max(stores)]
            if args.worker_nice:
                renice_workers(server, args.worker_nice)
            idle = search_latency(server, big, queries)
            up, busy, r = busy_search(
                server, big, queries, documents(docs[: args.remote_files], f"\n(copy {time.time()})")
            )
            print(
                f"\nsearch on the {max(stores):,}-chunk store while {args.remote_files} files are uploaded, then "
                f"ingested into another store (ingestion at the workers' ASSISTD_INGEST_NICE, default 10; "
                f"--worker-nice {args.worker_nice}):"
            )
            print(f"  idle:            {pcts(idle)}")
            print(f"  while uploading: {pcts(up)}")
            print(f"  while ingesting: {pcts(busy)}  ({load()})")
            ingest_report("the ingestion meanwhile", r)
            ratio = float(np.median(busy) / np.median(idle))
            print(
                f"  p50 while ingesting / idle = {ratio:.2f} (target <= 1.5): {'PASS' if ratio <= 1.5 else 'FAIL'}"
                f"; while uploading {np.median(up) / np.median(idle):.2f}"
            )
    finally:
        stop(server.procs)


if __name__ == "__main__":
    main()
