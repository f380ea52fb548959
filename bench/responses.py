"""Responses: time added to the model's, first events when streamed, throughput beside runs,
CPU per response, and a burst, in distributed mode (API + N workers, Redis, PostgreSQL), or with
`--embedded --parts plain stream batch` against `assistd serve` (SQLite, one process).

    python bench/responses.py [--workers 1] [--sequential 100] [--seconds 10] [--burst 1500 3000]

Driven by the official SDK where a user would use it, against the scripted model:
- plain: `client.responses.create` one after another; its wall time minus the model's own time
  for that request (the scripted model's received_at -> done_at, matched by a tag in the input)
- streamed: `client.responses.stream` on `words:20`: the request -> the first event, and the
  model's first token (its received_at: a 0 ms model answers at once) -> the first
  `response.output_text.delta`
- background: created, then retrieved every 10 ms until it ends: the create's answer, and the
  time the service adds to the model's up to the row's completed_at
- throughput: wrk creates background responses (POST /v1/responses) for --seconds, and runs
  (POST /v1/threads/runs, as bench/runs.py does) the same way, alternately, at 0 ms and with a
  1 s model; completions per second between the first and the last completion (database times)
- CPU: the API's and the workers' /proc time over a batch, per response; PostgreSQL and Redis
  apart (they serve every process on the machine)
- burst: --burst background creates at once, each on a connection of its own (the API refuses
  requests with a 503 while it holds more than `max_connections`, 2,048, open); each one
  answered 2xx must be stored and end, each one refused must not be stored
The peer (the strongest self-hosted implementation measured) adds about 68 ms to a plain create,
takes 55 ms to the first delta, completes 11-14 responses/s at 0 ms and 6.5/s with a 1 s model,
and spends about 24 ms of CPU per response; ratios are printed against those figures.
Needs Redis and PostgreSQL on loopback (`make services`) and wrk. `--unix` reaches PostgreSQL
through its Unix socket and starts a Redis of its own on one (on a 2-core machine it gained
nothing measurable: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import BENCH_ENV, HEADERS, pct, rate, throughput_wrk  # noqa: E402
from bench.scale import cpu_ticks, process_seconds  # noqa: E402
from tests.procs import (  # noqa: E402
    KEY_A,
    ROOT,
    ScriptedModel,
    Server,
    fresh_pg_database,
    over_unix_socket,
    start_distributed,
    start_embedded,
    start_model,
    stop,
    unix_redis,
)

PEER_ADDED_MS = 68.0
PEER_FIRST_DELTA_MS = 55.0
PEER_PER_S = {"echo": (11.0, 14.0), "slow:1000": (6.5, 6.5)}
PEER_CPU_MS = 24.0
ENDED = ("completed", "failed", "incomplete", "cancelled")
MODELS = {"echo": "0 ms", "slow:1000": "1 s"}
Times = dict[str, tuple[float, float | None, str]]


# --- what the server spent ------------------------------------------------------------------


def cpu_now(server: Server) -> dict[str, float]:
    """CPU seconds used so far by the API, the workers, and PostgreSQL + Redis (machine-wide).
    Embedded: `serve`'s one process counts as the API."""
    hz = os.sysconf("SC_CLK_TCK")
    groups, _ = cpu_ticks()
    api, *workers = server.procs
    return {
        "api": process_seconds(api.pid),
        "workers": sum(process_seconds(w.pid) for w in workers),
        "services": (groups["postgres"] + groups["redis"]) / hz,
    }


def per_item(before: dict[str, float], after: dict[str, float], count: float) -> dict[str, float]:
    """Milliseconds of CPU per item, each group and the service's own (API + workers)."""
    out = {k: (after[k] - before[k]) * 1000 / count for k in before}
    out["ours"] = out["api"] + out["workers"]
    return out


# --- the scripted model and the database ----------------------------------------------------


def model_times(model: ScriptedModel) -> dict[str, dict[str, Any]]:
    """What the model received, by the last user message's text (the tag)."""
    out = {}
    for r in model.requests():
        user = [m for m in r["body"].get("messages", []) if m.get("role") == "user"]
        content = user[-1]["content"] if user else ""
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content)
        out[str(content)] = r
    return out


def clear(model: ScriptedModel) -> None:
    httpx.delete(f"{model.url}/_requests", timeout=30)


def response_times(server: Server, where: str, params: tuple[Any, ...]) -> Times:
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        rows = conn.execute(
            f"SELECT id, created_at, completed_at, status FROM responses WHERE {where}", params
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def wait_tagged(server: Server, key: str, tag: str, timeout: float) -> Times:
    """The responses whose metadata[key] is `tag`, once every one has ended."""
    deadline = time.time() + timeout
    while True:
        times = response_times(server, "metadata->>%s = %s", (key, tag))
        if all(t[2] in ENDED for t in times.values()):
            return times
        if time.time() > deadline:
            raise TimeoutError(f"{sum(t[2] not in ENDED for t in times.values())} responses unfinished")
        time.sleep(0.05)


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p99": pct(values, 99)}


# --- latency, through the SDK ----------------------------------------------------------------


def plain(server: Server, model: ScriptedModel, count: int) -> dict[str, Any]:
    """Sequential plain creates through the SDK, each followed by one as a bare HTTP request
    (httpx, nothing parsed but the JSON): what each adds to the model's time, and the CPU the
    server spends on them."""
    client = server.client(max_retries=0)
    bare = httpx.Client(base_url=server.url, headers=HEADERS, timeout=60)

    def sdk(tag: str) -> str:
        return client.responses.create(model="echo", input=tag).output_text

    def http(tag: str) -> str:
        answer = bare.post("/v1/responses", json={"model": "echo", "input": tag}).json()
        return str(answer["output"][0]["content"][0]["text"])

    for _ in range(5):
        sdk("warm up")
        http("warm up")
    clear(model)
    walls: dict[str, dict[str, float]] = {"sdk": {}, "http": {}}
    before = cpu_now(server)
    for _ in range(count):
        for name, create in (("sdk", sdk), ("http", http)):
            tag = f"plain-{uuid.uuid4()}"
            started = time.perf_counter()
            text = create(tag)
            walls[name][tag] = time.perf_counter() - started
            assert text == f"You said: {tag}", text
            time.sleep(0.02)
    cpu = per_item(before, cpu_now(server), 2 * count)
    bare.close()
    seen = model_times(model)
    added = {
        name: stats(
            [(wall - (seen[t]["done_at"] - seen[t]["received_at"])) * 1000 for t, wall in got.items()]
        )
        for name, got in walls.items()
    }
    return {"added": added["sdk"], "added_http": added["http"], "cpu": cpu}


def streamed(server: Server, model: ScriptedModel, count: int, words: int) -> dict[str, Any]:
    """Sequential `responses.stream` calls: the first event, and the first text delta after the
    model's first token."""
    client = server.client(max_retries=0)
    firsts, deltas, sent = [], [], {}
    for i in range(count + 3):  # the first three warm up
        tag = f"stream-{uuid.uuid4()}"
        if i == 3:
            clear(model)
        started = time.time()
        first = delta = None
        with client.responses.stream(model=f"words:{words}", input=tag) as stream:
            for event in stream:
                first = first or time.time()
                if delta is None and event.type == "response.output_text.delta":
                    delta = time.time()
            final = stream.get_final_response()
        assert final.status == "completed" and final.output_text.count("w") == words, final
        assert first is not None and delta is not None
        if i >= 3:
            firsts.append((first - started) * 1000)
            deltas.append((delta - started) * 1000)
            sent[tag] = delta
    seen = model_times(model)
    from_model = [(at - seen[tag]["received_at"]) * 1000 for tag, at in sent.items()]
    return {"first_event": stats(firsts), "first_delta": stats(deltas), "model_to_delta": stats(from_model)}


def background(server: Server, model: ScriptedModel, count: int) -> dict[str, Any]:
    """Sequential background creates, each retrieved every 10 ms until it ends: the create's
    answer, and the time added to the model's up to the row's completed_at."""
    client = server.client(max_retries=0)
    for _ in range(3):
        client.responses.create(model="echo", input="warm up", background=True)
    time.sleep(0.5)
    clear(model)
    acks, sent, ids = [], {}, {}
    for tag in (f"bg-{uuid.uuid4()}" for _ in range(count)):
        started = time.time()
        response = client.responses.create(model="echo", input=tag, background=True)
        acks.append((time.time() - started) * 1000)
        while response.status in ("queued", "in_progress"):
            time.sleep(0.01)
            response = client.responses.retrieve(response.id)
        assert response.status == "completed", response
        sent[tag], ids[tag] = started, response.id
    times = response_times(server, "id = ANY(%s)", (list(ids.values()),))
    seen = model_times(model)
    added = []
    for tag, started in sent.items():
        completed = times[ids[tag]][1]
        assert completed is not None
        added.append((completed - started - (seen[tag]["done_at"] - seen[tag]["received_at"])) * 1000)
    return {"ack": stats(acks), "added": stats(added)}


async def plain_batch(url: str, count: int, concurrency: int) -> None:
    """`count` plain creates, `concurrency` in flight (httpx: a lighter client than the SDK)."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            async with sem:
                resp = await client.post("/v1/responses", json={"model": "echo", "input": f"batch {i}"})
                resp.raise_for_status()
                assert resp.json()["status"] == "completed"

        await asyncio.gather(*(one(i) for i in range(count)))


def concurrent_plain(server: Server, count: int, concurrency: int) -> dict[str, Any]:
    before, started = cpu_now(server), time.time()
    asyncio.run(plain_batch(server.url, count, concurrency))
    wall = time.time() - started
    return {"per_s": count / wall, "cpu": per_item(before, cpu_now(server), count)}


# --- throughput beside runs ------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"model": "%s", "input": "bench", "background": true, "metadata": {"bench": "%s"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def responses_wrk(server: Server, model: str, seconds: int, connections: int) -> dict[str, float]:
    """Background responses created by wrk for `seconds`; completions/s as bench/runs.py counts runs."""
    tag = uuid.uuid4().hex
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT % (model, tag, KEY_A))
    started = time.time()
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-s",
        str(script),
        f"{server.url}/v1/responses",
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    times = wait_tagged(server, "bench", tag, 600)
    return rate(times, len(times), started)


def measured(kind: str, server: Server, model: str, seconds: int, connections: int) -> dict[str, Any]:
    """One load of runs or responses, with the CPU it cost per completion."""
    before = cpu_now(server)
    load = throughput_wrk if kind == "runs" else responses_wrk
    result: dict[str, Any] = dict(load(server, model, seconds, connections))
    result["cpu"] = per_item(before, cpu_now(server), int(result["completed"]))
    result["load"] = os.getloadavg()[0]
    return result


def side_by_side(server: Server, rounds: int, seconds: int, connections: int) -> list[dict[str, Any]]:
    """Runs and responses alternately, each model latency, `rounds` times (the order swapped
    every round, so neither kind always runs on a warmer or busier machine)."""
    rows = []
    for i in range(rounds):
        for model in MODELS:
            kinds = ("responses", "runs") if i % 2 == 0 else ("runs", "responses")
            row: dict[str, Any] = {"round": i + 1, "model": model}
            for kind in kinds:
                time.sleep(1)
                row[kind] = measured(kind, server, model, seconds, connections)
                print(f"  round {i + 1}, {model}, {kind}: {row[kind]['runs_per_s']:.0f}/s", flush=True)
            rows.append(row)
    return rows


# --- a burst ---------------------------------------------------------------------------------


async def burst_creates(url: str, count: int, tag: str) -> list[tuple[int, int | None, str]]:
    """`count` background creates at once, each on its own connection: (n, HTTP status or None,
    the id or what went wrong). aiohttp: httpx's pool takes minutes over 3,000 connections."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, headers=HEADERS, connector=connector, timeout=timeout) as client:

        async def one(n: int) -> tuple[int, int | None, str]:
            body = {
                "model": "echo",
                "input": f"{tag} {n}",
                "background": True,
                "metadata": {"burst": tag, "n": str(n)},
            }
            try:
                async with client.post("/v1/responses", json=body) as resp:
                    text = await resp.text()  # a 503 from uvicorn's connection limit is plain text
                    return n, resp.status, json.loads(text)["id"] if resp.status < 300 else text[:120]
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return n, None, type(exc).__name__

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def burst(server: Server, count: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex
    started = time.time()
    answers = asyncio.run(burst_creates(server.url, count, tag))
    sent_s = time.time() - started
    times = wait_tagged(server, "burst", tag, 600)
    with psycopg.connect(server.env["ASSISTD_DATABASE_URL"]) as conn:
        stored: dict[str, str] = dict(
            conn.execute(
                "SELECT metadata->>'n', id FROM responses WHERE metadata->>'burst' = %s", (tag,)
            ).fetchall()
        )
    acked = {str(n): rid for n, status, rid in answers if status is not None and status < 300}
    refused = {str(n) for n, status, _ in answers if status is not None and status >= 300}
    unanswered = {str(n) for n, status, _ in answers if status is None}
    return {
        "sent": count,
        "sent_s": sent_s,
        "answers": Counter(
            str(status) if status else why for _, status, why in answers if not status or status >= 300
        ),
        "acked": len(acked),
        "acked_stored": sum(stored.get(n) == rid for n, rid in acked.items()),
        "acked_ended": Counter(times[stored[n]][2] for n in acked if n in stored),
        "refused": len(refused),
        "refused_stored": len(refused & stored.keys()),
        "unanswered": len(unanswered),
        "unanswered_stored": len(unanswered & stored.keys()),
        "stored": len(stored),
        "stored_ended": Counter(t[2] for t in times.values()),
    }


# --- the whole ---------------------------------------------------------------------------------


def at_rest(server: Server, seconds: float) -> dict[str, float]:
    """CPU milliseconds per second that the API and the workers spend with nothing to do."""
    before = cpu_now(server)
    time.sleep(seconds)
    return per_item(before, cpu_now(server), seconds)


def bench(server: Server, model: ScriptedModel, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"rest": at_rest(server, 5)}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("plain", lambda: plain(server, model, args.sequential)),
        ("stream", lambda: streamed(server, model, args.sequential, args.words)),
        ("background", lambda: background(server, model, args.sequential)),
        ("batch", lambda: concurrent_plain(server, args.batch, args.batch_concurrency)),
        ("loads", lambda: side_by_side(server, args.rounds, args.seconds, args.connections)),
        ("burst", lambda: [burst(server, n) for n in args.burst]),
    ]
    began: dict[str, float] = {}
    row["load_at"] = began
    for name, step in steps:
        if name in args.parts:
            began[name] = os.getloadavg()[0]
            print(f"{name} (load average {began[name]:.2f})", flush=True)
            row[name] = step()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--sequential", type=int, default=100, help="requests for each latency's percentiles")
    parser.add_argument("--words", type=int, default=20, help="deltas of each streamed answer")
    parser.add_argument("--batch", type=int, default=1000, help="plain creates for the CPU under load")
    parser.add_argument("--batch-concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="wrk's duration for each load")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections")
    parser.add_argument("--rounds", type=int, default=2, help="runs-then-responses loads at each latency")
    parser.add_argument(
        "--burst", type=int, nargs="+", default=[1500, 3000], help="background creates sent at once"
    )
    parser.add_argument(
        "--parts", nargs="+", default=["plain", "stream", "background", "batch", "loads", "burst"]
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="`assistd serve` on SQLite instead (parts plain, stream, batch; its one process is the API)",
    )
    parser.add_argument(
        "--unix",
        action="store_true",
        help="reach PostgreSQL and Redis through Unix sockets (a Redis of the bench's own) instead of "
        "TCP on loopback",
    )
    args = parser.parse_args()
    if args.embedded and args.unix:
        parser.error("--unix is for distributed mode (embedded mode has neither)")
    if args.embedded and set(args.parts) - {"plain", "stream", "batch"}:
        parser.error("--embedded measures the parts plain, stream and batch only")

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the burst's sockets, client and server
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-responses-"))
    model, model_proc = start_model(tmp)
    results = []
    try:
        for n in args.workers:
            path = tmp / f"workers{n}"
            path.mkdir()
            services: list[subprocess.Popen[bytes]] = []
            if args.embedded:
                server = start_embedded(model, path, extra=BENCH_ENV)
            elif args.unix:
                redis_url, redis_proc = unix_redis(path)
                services.append(redis_proc)
                database_url = over_unix_socket(fresh_pg_database())
                server = start_distributed(
                    model, path, workers=n, extra=BENCH_ENV, redis_url=redis_url, database_url=database_url
                )
            else:
                server = start_distributed(model, path, workers=n, extra=BENCH_ENV)
            try:
                time.sleep(1)
                results.append((n, bench(server, model, args)))
            finally:
                server.close_clients()
                stop(server.procs + services)
    finally:
        stop([model_proc])
    report(results, args, load_before, os.getloadavg())


# --- the report ------------------------------------------------------------------------------


def machine(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    loads = (
        " / ".join(f"{a:.2f}" for a in load_before) + " before, " + " / ".join(f"{a:.2f}" for a in load_after)
    )
    return (
        f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, commit {commit} ({ROOT})\n"
        f"load average (1, 5, 15 min): {loads} after"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_latency(r: dict[str, Any]) -> list[tuple[str, bool]]:
    if not {"plain", "stream", "background"} & r.keys():
        return []
    print("| measure (ms) | p50 | p99 | target | peer | peer / p50 |")
    print("|---|---|---|---|---|---|")
    targets = []

    def line(name: str, s: dict[str, float], target: float | None, peer: float | None) -> None:
        ratio = f"{peer / s['p50']:.1f}x" if peer else ""
        wanted = f"p50 <= {target:.0f}" if target else ""
        print(f"| {name} | {s['p50']:.1f} | {s['p99']:.1f} | {wanted} | {peer or ''} | {ratio} |")
        if target:
            targets.append((f"{name}: p50 {s['p50']:.1f} ms <= {target:.0f} ms", s["p50"] <= target))

    if "plain" in r:
        line("plain create: added to the model's time", r["plain"]["added"], 10, PEER_ADDED_MS)
        line("plain create as bare HTTP (no SDK): added", r["plain"]["added_http"], None, None)
    if "stream" in r:
        s = r["stream"]
        line("streamed: request -> first event", s["first_event"], 10, None)
        line("streamed: model's first token -> first text delta", s["model_to_delta"], 15, None)
        line("streamed: request -> first text delta", s["first_delta"], None, PEER_FIRST_DELTA_MS)
    if "background" in r:
        line("background: create answered", r["background"]["ack"], None, None)
        line("background: added to the model's time, to completed_at", r["background"]["added"], None, None)
    return targets


def report_loads(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    print(
        "| model | round | responses/s | runs/s | responses / runs | peer ratio "
        "| CPU ms per response / per run (API + workers) | PostgreSQL + Redis ms, response / run | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        resp, runs = row["responses"], row["runs"]
        low, high = PEER_PER_S[row["model"]]
        peer = f"{resp['runs_per_s'] / high:.0f}x" + (
            "" if low == high else f"-{resp['runs_per_s'] / low:.0f}x"
        )
        print(
            f"| {MODELS[row['model']]} | {row['round']} | {resp['runs_per_s']:.0f} | {runs['runs_per_s']:.0f} "
            f"| {resp['runs_per_s'] / runs['runs_per_s']:.2f} | {peer} "
            f"| {resp['cpu']['ours']:.2f} / {runs['cpu']['ours']:.2f} "
            f"| {resp['cpu']['services']:.2f} / {runs['cpu']['services']:.2f} | {resp['load']:.1f} |"
        )
        for kind in ("responses", "runs"):
            if row[kind]["completed"] != row[kind]["runs"]:
                print(f"  WARNING: {kind}: {row[kind]['completed']} of {row[kind]['runs']} completed")
    targets = []
    for model, latency in MODELS.items():
        mine = [r for r in rows if r["model"] == model]
        resp = statistics.median(r["responses"]["runs_per_s"] for r in mine)
        runs = statistics.median(r["runs"]["runs_per_s"] for r in mine)
        ahead = sum(r["responses"]["runs_per_s"] >= r["runs"]["runs_per_s"] for r in mine)
        text = (
            f"responses/s >= runs/s at {latency}: medians {resp:.0f} vs {runs:.0f} ({resp / runs:.2f}; "
            f"responses ahead in {ahead} of {len(mine)} rounds)"
        )
        targets.append((text, resp >= runs))
    return targets


def report_cpu(r: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool]]:
    print("| batch | API | workers | API + workers | PostgreSQL + Redis | peer / ours |")
    print("|---|---|---|---|---|---|")
    batches = []
    if "plain" in r:
        batches.append((f"plain, {2 * args.sequential} sequential", r["plain"]["cpu"]))
    if "batch" in r:
        rate_s = f"{r['batch']['per_s']:.0f}/s"
        batches.append(
            (f"plain, {args.batch} with {args.batch_concurrency} in flight ({rate_s})", r["batch"]["cpu"])
        )
    for row in r.get("loads", []):
        name = f"background, wrk, {MODELS[row['model']]} model, round {row['round']}"
        batches.append((name, row["responses"]["cpu"]))
    rest = r["rest"]
    cells = " | ".join(f"{rest[k]:.2f}" for k in ("api", "workers", "ours", "services"))
    print(f"| at rest, per second (not per response) | {cells} | |")
    for name, c in batches:
        print(
            f"| {name} | {c['api']:.2f} | {c['workers']:.2f} | {c['ours']:.2f} | {c['services']:.2f} "
            f"| {PEER_CPU_MS / c['ours']:.0f}x |"
        )
    plain_cpu = (
        r["batch"]["cpu"]["ours"] if "batch" in r else r["plain"]["cpu"]["ours"] if "plain" in r else None
    )
    return (
        [] if plain_cpu is None else [(f"CPU per plain response {plain_cpu:.2f} ms <= 3 ms", plain_cpu <= 3)]
    )


def report_burst(b: dict[str, Any]) -> list[tuple[str, bool]]:
    print(
        f"{b['sent']} background creates at once (sent and answered in {b['sent_s']:.1f} s): "
        f"{b['acked']} acknowledged, {b['refused']} refused, {b['unanswered']} unanswered; "
        f"refusals and errors {dict(b['answers'])}"
    )
    print(
        f"  acknowledged: {b['acked_stored']} stored, ended {dict(b['acked_ended'])}; "
        f"refused: {b['refused_stored']} stored; unanswered: {b['unanswered_stored']} stored; "
        f"in the table: {b['stored']}, ended {dict(b['stored_ended'])}"
    )
    whole = (
        b["acked_stored"] == b["acked"]
        and sum(b["acked_ended"].values()) == b["acked"]
        and b["refused_stored"] == 0
        and set(b["stored_ended"]) <= set(ENDED)
    )
    return [
        (f"burst of {b['sent']}: every acknowledged response stored and ended, no refused one stored", whole)
    ]


def report(
    results: list[tuple[int, dict[str, Any]]],
    args: argparse.Namespace,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> None:
    print("\n" + machine(load_before, load_after))
    print(
        f"sequential requests: {args.sequential}; streamed answers of {args.words} words; loads: wrk, "
        f"{args.connections} connections, {args.seconds} s, {args.rounds} round(s); bursts of {args.burst}"
    )
    if not args.embedded:
        print("PostgreSQL and Redis reached through " + ("Unix sockets" if args.unix else "TCP on loopback"))
    for n, r in results:
        print("\n## `assistd serve` (SQLite, one process)\n" if args.embedded else f"\n## {n} worker(s)\n")
        print(
            "load average (1 min) as each part began: "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["load_at"].items())
            + "\n"
        )
        targets = report_latency(r)
        if "loads" in r:
            print()
            targets += report_loads(r["loads"])
        if "plain" in r or "batch" in r or "loads" in r:
            print("\nCPU per response (ms; PostgreSQL and Redis machine-wide)\n")
            targets += report_cpu(r, args)
        for b in r.get("burst", []):
            print()
            targets += report_burst(b)
        print("\ntargets:")
        for text, ok in targets:
            print(f"  {verdict(ok)}: {text}")


if __name__ == "__main__":
    main()
