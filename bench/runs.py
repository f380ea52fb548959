"""Run throughput and service overhead, distributed mode (API + N workers, Redis, PostgreSQL).

    python bench/runs.py [--workers 1 2] [--seconds 10] [--sequential 100]

Measured with the scripted model, in one run, for each worker count:
- overhead in:  run created (API commit) -> the model request arrives at the scripted model
- overhead out: the model's response is sent -> the run is `completed` in the database
  (both from sequential runs on an idle system, p50/p99)
- runs/s at zero model latency and with a 1 s model: runs created as fast as the API takes
  them for --seconds by wrk (a C load generator, if installed; else a Python client), then
  completions per second between the first and the last completion
The reference peer (Celery-based) adds about 300 ms per run and completes about 6 runs/s on a
machine like this one; ratios are printed against those figures.
Needs Redis and PostgreSQL on loopback (`make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.procs import KEY_A, Server, start_distributed, start_model, stop  # noqa: E402

PEER_OVERHEAD_MS = 300.0
PEER_RUNS_PER_S = 6.0
HEADERS = {"Authorization": f"Bearer {KEY_A}"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def db_times(server: Server, run_ids: list[str]) -> dict[str, tuple[float, float | None, str]]:
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT id, created_at, completed_at, status FROM runs WHERE id = ANY(%s)", (run_ids,)
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def wait_done(
    server: Server, run_ids: list[str], timeout: float
) -> dict[str, tuple[float, float | None, str]]:
    deadline = time.time() + timeout
    while True:
        times = db_times(server, run_ids)
        if all(t[2] in ("completed", "failed", "incomplete", "cancelled", "expired") for t in times.values()):
            return times
        if time.time() > deadline:
            raise TimeoutError(f"{sum(t[2] != 'completed' for t in times.values())} runs unfinished")
        time.sleep(0.02)


async def create_runs(url: str, assistant_id: str, tags: list[str], concurrency: int) -> list[str]:
    """POST /v1/threads/runs for every tag, `concurrency` at a time; the run ids, in order."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=60) as client:

        async def one(tag: str) -> str:
            async with sem:
                body = {
                    "assistant_id": assistant_id,
                    "thread": {"messages": [{"role": "user", "content": tag}]},
                }
                resp = await client.post("/v1/threads/runs", json=body)
                resp.raise_for_status()
                return str(resp.json()["id"])

        return list(await asyncio.gather(*(one(t) for t in tags)))


def new_assistant(server: Server, model: str) -> str:
    resp = httpx.post(
        f"{server.url}/v1/assistants", headers=HEADERS, json={"model": model, "instructions": "bench"}
    )
    resp.raise_for_status()
    return str(resp.json()["id"])


def overhead(server: Server, model_url: str, count: int) -> dict[str, float]:
    """Sequential runs on an idle system: time spent in Assistd before and after the model call."""
    assistant = new_assistant(server, "echo")
    tags = [f"seq-{uuid.uuid4()}" for _ in range(count)]
    ids = []
    for tag in tags:
        ids += asyncio.run(create_runs(server.url, assistant, [tag], 1))
        wait_done(server, ids[-1:], 30)
        time.sleep(0.02)
    times = db_times(server, ids)
    seen = {
        r["body"]["messages"][-1]["content"]: r
        for r in httpx.get(f"{model_url}/_requests", timeout=60).json()
    }
    into, out = [], []
    for tag, run_id in zip(tags, ids):
        created, completed, status = times[run_id]
        req = seen[tag]
        assert status == "completed" and completed is not None, (run_id, status)
        into.append((req["received_at"] - created) * 1000)
        out.append((completed - req["done_at"]) * 1000)
    return {
        "in_p50": pct(into, 50),
        "in_p99": pct(into, 99),
        "out_p50": pct(out, 50),
        "out_p99": pct(out, 99),
    }


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"assistant_id": "%s", "thread": {"messages": [{"role": "user", "content": "bench"}]}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


# Production-like timings for benchmarks (the tests shorten leases and sweeps to finish fast).
BENCH_ENV = {
    "ASSISTD_LOG_LEVEL": "WARNING",
    "ASSISTD_RUN_LEASE_SECONDS": "30",
    "ASSISTD_REQUEUE_AFTER_SECONDS": "30",
    "ASSISTD_SWEEP_INTERVAL_SECONDS": "2",
}


def load(server: Server, model: str, seconds: int, runs: int, concurrency: int) -> dict[str, float]:
    """Runs/s under load: wrk for `seconds` if installed, else `runs` runs from a Python client
    (which takes a share of the CPU from the server)."""
    if shutil.which("wrk"):
        return throughput_wrk(server, model, seconds, concurrency)
    return throughput(server, model, runs, max(concurrency, 256))


def throughput_wrk(server: Server, model: str, seconds: int, connections: int) -> dict[str, float]:
    """Runs created by wrk (a C client, so the client takes little of the 2 cores) for `seconds`."""
    assistant = new_assistant(server, model)
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT % (assistant, KEY_A))
    started = time.time()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"{server.url}/v1/threads/runs",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        ids = [
            r[0] for r in conn.execute("SELECT id FROM runs WHERE assistant_id = %s", (assistant,)).fetchall()
        ]
    times = wait_done(server, ids, 600)
    return rate(times, len(ids), started)


def rate(times: dict[str, tuple[float, float | None, str]], count: int, started: float) -> dict[str, float]:
    """Steady-state completions per second: between the first and the last completion, so the
    model's own latency before the first answer does not count against the service."""
    completed = sorted(t[1] for t in times.values() if t[2] == "completed" and t[1] is not None)
    return {
        "runs": count,
        "completed": len(completed),
        "runs_per_s": (len(completed) - 1) / (completed[-1] - completed[0]),
        "wall_s": time.time() - started,
    }


def throughput(server: Server, model: str, count: int, concurrency: int) -> dict[str, float]:
    assistant = new_assistant(server, model)
    tags = [f"tp-{uuid.uuid4()}" for _ in range(count)]
    started = time.time()
    ids = asyncio.run(create_runs(server.url, assistant, tags, concurrency))
    return rate(wait_done(server, ids, 300), count, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=1000, help="runs for the zero-latency throughput")
    parser.add_argument("--slow-runs", type=int, default=1500, help="runs for the 1 s model throughput")
    parser.add_argument("--sequential", type=int, default=100, help="runs for the overhead percentiles")
    parser.add_argument("--concurrency", type=int, default=64, help="client requests in flight")
    parser.add_argument(
        "--seconds", type=int, default=10, help="load duration with wrk (apt-get install wrk)"
    )
    parser.add_argument(
        "--model-http",
        nargs="+",
        default=["aiohttp"],
        help="model client transports to compare (aiohttp is the default setting)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-"))
    model, model_proc = start_model(tmp)
    results: list[dict[str, Any]] = []
    try:
        for i, (n, http) in enumerate((n, http) for n in args.workers for http in args.model_http):
            path = tmp / f"{i}-workers{n}-{http}"
            path.mkdir()
            server = start_distributed(model, path, workers=n, extra=BENCH_ENV | {"ASSISTD_MODEL_HTTP": http})
            try:
                time.sleep(1)
                row: dict[str, Any] = {"workers": n, "http": http}
                row |= overhead(server, model.url, args.sequential)
                row["zero"] = load(server, "echo", args.seconds, args.runs, args.concurrency)
                row["slow"] = load(server, "slow:1000", args.seconds, args.slow_runs, args.concurrency)
                results.append(row)
            finally:
                stop(server.procs)
    finally:
        stop([model_proc])
    report(results, args)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\nmachine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    client = (
        f"wrk, {args.concurrency} connections, {args.seconds} s per load"
        if shutil.which("wrk")
        else "Python httpx"
    )
    print(f"sequential runs: {args.sequential}; load client: {client}")
    for r in results:
        print(
            f"  {r['workers']} worker(s): {r['zero']['runs']} runs at 0 ms, {r['slow']['runs']} runs with the 1 s model"
        )
    print()
    print(
        "| workers | model client | overhead in p50 / p99 (ms) | overhead out p50 / p99 (ms) | runs/s, 0 ms model "
        "| runs/s, 1 s model |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['workers']} | {r['http']} | {r['in_p50']:.1f} / {r['in_p99']:.1f} | {r['out_p50']:.1f} / {r['out_p99']:.1f} "
            f"| {r['zero']['runs_per_s']:.0f} | {r['slow']['runs_per_s']:.0f} |"
        )
    print("\nagainst the peer (about 300 ms added per run, about 6 runs/s):")
    for r in results:
        added = r["in_p50"] + r["out_p50"]
        print(
            f"  {r['workers']} worker(s): overhead {PEER_OVERHEAD_MS / added:.0f}x lower "
            f"({added:.1f} ms vs {PEER_OVERHEAD_MS:.0f} ms), throughput {r['zero']['runs_per_s'] / PEER_RUNS_PER_S:.0f}x "
            f"(0 ms model), {r['slow']['runs_per_s'] / PEER_RUNS_PER_S:.0f}x (1 s model)"
        )
    print(
        "\ntargets: overhead p50 <= 15 ms each way; >= 150 runs/s at 0 ms; >= 200 runs/s with the 1 s model"
    )
    for r in results:
        for kind in ("zero", "slow"):
            if r[kind]["completed"] != r[kind]["runs"]:
                print(
                    f"  WARNING: {r['workers']} worker(s), {kind}: only {r[kind]['completed']} of {r[kind]['runs']} completed"
                )


if __name__ == "__main__":
    main()
