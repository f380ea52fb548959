"""The everyday SDK flow, as the quickstart writes it: create a thread, add a message, create a run
and poll it (`create_and_poll`), list the messages. Distributed mode (API + N workers,
PostgreSQL, Redis), the scripted model, the official `openai` client (AsyncOpenAI).

    python bench/sdk_flow.py [--flows 2000] [--concurrency 200] [--workers 1] [--sequential 50]
                             [--rate-limits]

- burst: --flows flows, --concurrency of them in flight; flows/s as the client saw them (first
  request -> last answer), and by the server's timestamps (first run created -> last completed);
  p50/p99 of each request; CPU per flow of every process: API, workers, PostgreSQL, Redis, and
  this client (its share of the machine too).
- sequential: --sequential flows one after another, at a 0 ms model (create_and_poll's p50,
  target <= 15 ms) and at a 1 s model (the time a flow adds to the model's second).
- --rate-limits: every project gets RPM and TPM limits it never reaches, so each request pays
  the check (one Redis round trip) and each model call the token count: their cost per flow.
The peer (Celery-based, measured the same way on this kind of machine) completes 7.5-14.6
flows/s at 127-144 ms of server CPU each. Targets (issue #22): server CPU per flow <= 4 ms (API
<= 2 ms), >= 150 flows/s, create_and_poll p50 <= 15 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import BENCH_ENV, pct  # noqa: E402
from bench.scale import cpu_ticks, process_seconds  # noqa: E402
from tests.procs import KEY_A, Server, children, start_distributed, start_embedded, start_model, stop  # noqa: E402

PEER_FLOWS_PER_S = (7.5, 14.6)
PEER_CPU_MS = (127.0, 144.0)
STEPS = ("threads.create", "messages.create", "runs.create_and_poll", "messages.list")
CPU_KEYS = ("api", "workers", "postgres", "redis", "client")


def cpu_seconds(server: Server) -> dict[str, float]:
    """CPU seconds used so far: the API, the workers, PostgreSQL, Redis, this client. Embedded:
    `serve`'s API processes (the process itself when it has none) and its worker (the parent)."""
    hz = os.sysconf("SC_CLK_TCK")
    groups, _ = cpu_ticks()
    me = resource.getrusage(resource.RUSAGE_SELF)
    client = me.ru_utime + me.ru_stime
    if server.mode == "embedded":
        parent = server.procs[0].pid
        if kids := children(parent):
            api, worker = sum(process_seconds(k) for k in kids), process_seconds(parent)
        else:
            api, worker = process_seconds(parent), 0.0
        return {"api": api, "workers": worker, "postgres": 0.0, "redis": 0.0, "client": client}
    api_proc, *workers = server.procs
    return {
        "api": process_seconds(api_proc.pid),
        "workers": sum(process_seconds(w.pid) for w in workers),
        "postgres": groups["postgres"] / hz,
        "redis": groups["redis"] / hz,
        "client": client,
    }


async def flow(client: AsyncOpenAI, model: str, times: dict[str, list[float]], n: int) -> str:
    async def timed(step: str, call: Any) -> Any:
        started = time.perf_counter()
        result = await call
        times[step].append((time.perf_counter() - started) * 1000)
        return result

    assistant_id = ASSISTANTS[model]
    thread = await timed("threads.create", client.beta.threads.create())
    await timed(
        "messages.create", client.beta.threads.messages.create(thread.id, role="user", content=f"flow {n}")
    )
    run = await timed(
        "runs.create_and_poll",
        client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id),
    )
    assert run.status == "completed", run.last_error
    listed = await timed("messages.list", client.beta.threads.messages.list(thread.id))
    assert len(listed.data) == 2
    return str(run.id)


ASSISTANTS: dict[str, str] = {}


async def prepare(client: AsyncOpenAI, models: list[str]) -> None:
    for model in models:
        ASSISTANTS[model] = (await client.beta.assistants.create(model=model, name="bench")).id


def server_rate(server: Server, run_ids: list[str]) -> float:
    """Flows/s by the server's timestamps: first run created -> last completed."""
    url = server.env["ASSISTD_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            first, last = db.execute(
                f"SELECT min(created_at), max(completed_at) FROM runs WHERE id IN ({','.join('?' * len(run_ids))})",
                run_ids,
            ).fetchone() or (None, None)
        return len(run_ids) / (last - first) if first and last and last > first else float("nan")
    with psycopg.connect(url) as conn:
        first, last = conn.execute(
            "SELECT min(created_at), max(completed_at) FROM runs WHERE id = ANY(%s)", (run_ids,)
        ).fetchone() or (None, None)
    return len(run_ids) / (last - first) if first and last and last > first else float("nan")


async def burst(server: Server, flows: int, concurrency: int) -> dict[str, Any]:
    times: dict[str, list[float]] = defaultdict(list)
    sem = asyncio.Semaphore(concurrency)
    async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0, timeout=600) as client:
        await prepare(client, ["echo"])

        async def one(n: int) -> str:
            async with sem:
                return await flow(client, "echo", times, n)

        before, started = cpu_seconds(server), time.perf_counter()
        run_ids = await asyncio.gather(*(one(n) for n in range(flows)))
        wall = time.perf_counter() - started
        after = cpu_seconds(server)
    cpu = {k: (after[k] - before[k]) * 1000 / flows for k in before}
    return {
        "flows_per_s": flows / wall,
        "server_flows_per_s": server_rate(server, list(run_ids)),
        "times": dict(times),
        "cpu": cpu,
        "client_share": (after["client"] - before["client"]) / wall / (os.cpu_count() or 1),
    }


async def sequential(server: Server, model: str, n: int) -> dict[str, list[float]]:
    """Per step's times; under "cpu", the CPU per flow of each process (ms)."""
    times: dict[str, list[float]] = defaultdict(list)
    async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0, timeout=600) as client:
        await prepare(client, [model])
        for i in range(n + 3):
            if i == 3:  # the first three warm the connections
                times.clear()
                before = cpu_seconds(server)
            started = time.perf_counter()
            await flow(client, model, times, i)
            times["flow"].append((time.perf_counter() - started) * 1000)
        after = cpu_seconds(server)
    times["cpu"] = [(after[k] - before[k]) * 1000 / n for k in CPU_KEYS]
    return dict(times)


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50):7.1f} ms  p99 {pct(values, 99):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--rate-limits", action="store_true")
    parser.add_argument(
        "--embedded",
        type=int,
        default=0,
        help="`assistd serve --workers N` on SQLite instead (N API processes)",
    )
    args = parser.parse_args()
    env = BENCH_ENV | (
        {"ASSISTD_RATE_LIMIT_RPM": "1000000000", "ASSISTD_RATE_LIMIT_TPM": "1000000000"}
        if args.rate_limits
        else {}
    )
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-flow-"))
    model, model_proc = start_model(tmp)
    if args.embedded:
        server = start_embedded(model, tmp, extra=env, api_workers=args.embedded)
        deadline = time.monotonic() + 30
        while args.embedded > 1 and len(children(server.procs[0].pid)) < args.embedded:
            assert time.monotonic() < deadline, "the API processes did not start"
            time.sleep(0.1)
    else:
        server = start_distributed(model, tmp, workers=args.workers, extra=env)
    try:
        time.sleep(1)
        quick = asyncio.run(sequential(server, "echo", args.sequential))
        slow = asyncio.run(sequential(server, "slow:1000", max(5, args.sequential // 5)))
        b = asyncio.run(burst(server, args.flows, args.concurrency))
    finally:
        stop(server.procs)
        stop([model_proc])
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; "
        + (
            f"`assistd serve --workers {args.embedded}` on SQLite (api: its API processes, or the "
            "one process with its worker; workers: the parent's worker)"
            if args.embedded
            else f"{args.workers} worker(s), PostgreSQL + Redis"
        )
        + f"{', rate limits on' if args.rate_limits else ''}\n"
    )
    print(f"sequential, 0 ms model ({args.sequential} flows):")
    for step in STEPS:
        print(f"  {step:<22} {ms(quick[step])}")
    print("  CPU per flow: " + ", ".join(f"{k} {v:.2f} ms" for k, v in zip(CPU_KEYS, quick["cpu"])))
    cp = pct(quick["runs.create_and_poll"], 50)
    print(f"  create_and_poll p50 {cp:.1f} ms: target <= 15 ms {'met' if cp <= 15 else 'NOT met'}")
    added = [t - 1000 for t in slow["flow"]]
    print(f"sequential, 1 s model: a flow adds {ms(added)} to the model's second (peer: 168 ms)\n")
    print(f"burst: {args.flows} flows, {args.concurrency} in flight:")
    print(
        f"  flows/s as the client saw them {b['flows_per_s']:.1f} (by the server's timestamps "
        f"{b['server_flows_per_s']:.1f}); peer {PEER_FLOWS_PER_S[0]:g}-{PEER_FLOWS_PER_S[1]:g}: "
        f"{b['flows_per_s'] / PEER_FLOWS_PER_S[1]:.1f}-{b['flows_per_s'] / PEER_FLOWS_PER_S[0]:.1f}x; "
        f"target >= 150: {'met' if b['flows_per_s'] >= 150 else 'NOT met'}"
    )
    for step in STEPS:
        print(f"  {step:<22} {ms(b['times'][step])}")
    cpu = b["cpu"]
    server_ms = cpu["api"] + cpu["workers"] + cpu["postgres"] + cpu["redis"]
    print(
        "  CPU per flow: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu.items())
        + f"; server {server_ms:.2f} ms (peer {PEER_CPU_MS[0]:g}-{PEER_CPU_MS[1]:g}: "
        f"{PEER_CPU_MS[0] / server_ms:.0f}x less); targets server <= 4 ms "
        f"{'met' if server_ms <= 4 else 'NOT met'}, API <= 2 ms {'met' if cpu['api'] <= 2 else 'NOT met'}"
    )
    print(f"  the client took {100 * b['client_share']:.0f}% of the machine")


if __name__ == "__main__":
    main()
