"""Built-in tools through responses beside the same tools through runs, in one sitting: distributed
mode (API + 1 worker, PostgreSQL, Redis) with the real Docker engine, against the scripted model
(0 ms), driven by the official SDK with streaming on both sides.

    python bench/response_tools.py [--n 60] [--chunks 100000]

- code: `print(1)` in a warm container (responses chained by `previous_response_id`, so `auto`
  reuses the chain's container) against the same call in a warm thread session (runs on one
  thread). `responses.stream` and `runs.stream` to their end.
- search: file_search on a vector store of --chunks chunks (rows written straight into the
  tables ingestion fills, SciFact texts cycled, random MiniLM-sized vectors: the time, not the
  ranking, is measured), through a response and through a run on the same store.
For each: the flow's p50/p99, the same flow without the tool call (one model round, no tool)
and so the time the tool call adds, and the tool's own time seen in the stream (a response's
`...interpreting`/`...searching` -> `...completed` events; a run's code step delta with the
input -> the one with the outputs). Targets (issue #21): the Assistants tools' figures, warm
exec <= 50 ms added, search p50 <= 25 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import BENCH_ENV  # noqa: E402
from tests.procs import KEY_A, ScriptedModel, Server, start_distributed, start_model, stop  # noqa: E402

PER_FILE = 20
LOCAL_MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
SCIFACT = Path(os.environ.get("SCIFACT_DIR", Path(__file__).resolve().parents[2] / "shared/datasets/scifact"))
CODE = {"id": "call_code", "name": "code_interpreter", "arguments": json.dumps({"code": "print(1)"})}
SEARCH = {"id": "call_search", "name": "file_search", "arguments": json.dumps({"query": "cancer cells"})}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {pct(values, 50):6.1f} ms  p99 {pct(values, 99):6.1f} ms  (n={len(values)})"


def script(model: ScriptedModel, n: int, call: dict[str, Any] | None) -> str:
    turn: list[dict[str, Any]] = ([{"tool_calls": [call]}] if call else []) + [{"content": "ok"}]
    return model.script(str(uuid.uuid4()), turn * n)


def response_flow(
    client: OpenAI, model: str, tools: list[Any], chain: bool
) -> Callable[[], tuple[float, float | None]]:
    previous: list[str | None] = [None]

    def once() -> tuple[float, float | None]:
        started, tool_at, tool_ms = time.perf_counter(), 0.0, None
        kw: dict[str, Any] = {"previous_response_id": previous[0]} if chain and previous[0] else {}
        with client.responses.stream(model=model, input="go", tools=tools, **kw) as stream:
            for event in stream:
                if event.type.endswith(("_call.interpreting", "_call.searching")):
                    tool_at = time.perf_counter()
                elif event.type.endswith("_call.completed") and tool_at:
                    tool_ms = (time.perf_counter() - tool_at) * 1000
            final = stream.get_final_response()
        assert final.status == "completed", final.error
        previous[0] = final.id
        return (time.perf_counter() - started) * 1000, tool_ms

    return once


def run_flow(
    client: OpenAI, model: str, tools: list[Any], resources: dict[str, Any]
) -> Callable[[], tuple[float, float | None]]:
    assistant = client.beta.assistants.create(model=model, tools=tools, tool_resources=resources)
    thread = client.beta.threads.create()

    def once() -> tuple[float, float | None]:
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="go")
        started, tool_at, tool_ms = time.perf_counter(), 0.0, None
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                if event.event != "thread.run.step.delta":
                    continue
                for call in event.data.delta.step_details.tool_calls or []:  # type: ignore[union-attr]
                    if call.type != "code_interpreter" or call.code_interpreter is None:
                        continue
                    if call.code_interpreter.outputs:
                        tool_ms = (time.perf_counter() - tool_at) * 1000 if tool_at else None
                    elif call.code_interpreter.input:
                        tool_at = time.perf_counter()
            run = stream.get_final_run()
        assert run.status == "completed", run.last_error
        return (time.perf_counter() - started) * 1000, tool_ms

    return once


def measure(
    once: Callable[[], tuple[float, float | None]], n: int, warmup: int = 3
) -> tuple[list[float], list[float]]:
    total, tool = [], []
    for i in range(n + warmup):
        e2e, own = once()
        if i >= warmup:
            total.append(e2e)
            if own is not None:
                tool.append(own)
    return total, tool


def padded_store(server: Server, n: int) -> str:
    """A completed MiniLM store of `n` chunks, `PER_FILE` to a file (straight into the tables)."""
    from sqlalchemy import create_engine, insert

    from core.ids import new_id, now, seq
    from core.models import FILES, NO_FILES, VECTOR_STORE_FILES, VECTOR_STORES

    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"][:1500] for line in fh]
    rng = np.random.default_rng(0)
    store_id, t = new_id("vs"), now()
    files = [new_id("file-") for _ in range((n + PER_FILE - 1) // PER_FILE)]
    url = server.env["ASSISTD_DATABASE_URL"]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY file_chunks (content_key, position, text, vector) FROM STDIN") as copy:
            for i in range(n):
                vec = rng.normal(size=DIMENSIONS).astype("<f4")
                vec /= np.linalg.norm(vec)
                copy.write_row(
                    (f"pad-{store_id}-{i // PER_FILE}", i % PER_FILE, texts[i % len(texts)], vec.tobytes())
                )
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    rows = dict(project="proj_a", seq=seq(), created_at=t)
    with engine.begin() as conn:
        conn.execute(
            insert(VECTOR_STORES).values(
                id=store_id,
                name=f"padding {n}",
                last_active_at=t,
                usage_bytes=0,
                file_counts=NO_FILES | {"completed": len(files), "total": len(files)},
                embedding_model=LOCAL_MODEL,
                version=1,
                **rows,
            )
        )
        conn.execute(
            insert(FILES),
            [
                dict(id=f, filename=f"pad{i}.txt", purpose="assistants", bytes=1, status="processed", **rows)
                for i, f in enumerate(files)
            ],
        )
        conn.execute(
            insert(VECTOR_STORE_FILES),
            [
                dict(
                    vector_store_id=store_id,
                    id=f,
                    status="completed",
                    usage_bytes=1,
                    content_key=f"pad-{store_id}-{i}",
                    attempts=1,
                    **rows,
                )
                for i, f in enumerate(files)
            ],
        )
    engine.dispose()
    return store_id


def compare(
    name: str, flows: dict[str, Callable[[], tuple[float, float | None]]], n: int, target: float, what: str
) -> None:
    results = {label: measure(once, n) for label, once in flows.items()}
    print(f"\n{name}:")
    for label, (total, tool) in results.items():
        print(f"  {label:<28} {ms(total)}" + (f"   tool's own time {ms(tool)}" if tool else ""))
    for api in ("response", "run"):
        (with_tool, own), (without, _) = results[f"{api} with the tool"], results[f"{api} without a tool"]
        added = statistics.median(with_tool) - statistics.median(without)
        line = f"  {api}: the call adds {added:6.1f} ms at p50 (its second model round included)"
        if own:
            verdict = "met" if pct(own, 50) <= target else "NOT met"
            line += f"; {what}: p50 {pct(own, 50):.1f} ms (target <= {target:g} ms: {verdict})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="flows of each kind")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--parts", nargs="+", default=["code", "search"])
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-tools-"))
    model, model_proc = start_model(tmp)
    server = start_distributed(model, tmp, workers=1, extra=BENCH_ENV)
    client = OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)
    total = args.n + 3
    try:
        if "code" in args.parts:
            auto: Any = [{"type": "code_interpreter", "container": {"type": "auto"}}]
            compare(
                "code_interpreter, print(1) in a warm session",
                {
                    "response with the tool": response_flow(client, script(model, total, CODE), auto, True),
                    "response without a tool": response_flow(client, script(model, total, None), auto, True),
                    "run with the tool": run_flow(
                        client, script(model, total, CODE), [{"type": "code_interpreter"}], {}
                    ),
                    "run without a tool": run_flow(
                        client, script(model, total, None), [{"type": "code_interpreter"}], {}
                    ),
                },
                args.n,
                50,
                "the execution",
            )
        if "search" in args.parts:
            t0 = time.perf_counter()
            store = padded_store(server, args.chunks)
            print(f"\n{args.chunks:,} chunks written in {time.perf_counter() - t0:.1f} s")
            tools: Any = [{"type": "file_search", "vector_store_ids": [store], "max_num_results": 20}]
            resources = {"file_search": {"vector_store_ids": [store]}}
            compare(
                f"file_search on {args.chunks:,} chunks",
                {
                    "response with the tool": response_flow(
                        client, script(model, total, SEARCH), tools, False
                    ),
                    "response without a tool": response_flow(
                        client, script(model, total, None), tools, False
                    ),
                    "run with the tool": run_flow(
                        client, script(model, total, SEARCH), [{"type": "file_search"}], resources
                    ),
                    "run without a tool": run_flow(
                        client, script(model, total, None), [{"type": "file_search"}], resources
                    ),
                },
                args.n,
                25,
                "the search",
            )
    finally:
        client.close()
        stop(server.procs)
        stop([model_proc])


if __name__ == "__main__":
    main()
