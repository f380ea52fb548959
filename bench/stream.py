"""Streaming latency and relay rate, embedded and distributed, with the scripted model.

    python bench/stream.py [--runs 100] [--words 5000]

- first delta: the client sends `POST /v1/threads/runs` with `stream: true` -> the first
  `thread.message.delta` event reaches the client (p50/p99 over --runs sequential runs, model
  latency zero);
- relay rate: one run whose reply is --words tokens, streamed to one client: delta events per
  second between the first and the last delta the client receives.
Targets (issue 4): first delta p50 <= 30 ms; >= 2,000 delta events/s to one client.
Distributed mode needs Redis and PostgreSQL on loopback (`make services`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import new_assistant, pct  # noqa: E402
from tests.procs import KEY_A, Server, start_distributed, start_embedded, start_model, stop  # noqa: E402

HEADERS = {"Authorization": f"Bearer {KEY_A}"}


def stream_once(client: httpx.Client, server: Server, assistant: str, text: str) -> tuple[float, list[float]]:
    """(seconds to the first delta, arrival times of every delta) for one streamed run."""
    body = {
        "assistant_id": assistant,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": text}]},
    }
    sent = time.perf_counter()
    arrivals: list[float] = []
    with client.stream(
        "POST", f"{server.url}/v1/threads/runs", json=body, headers=HEADERS, timeout=120
    ) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line == "event: thread.message.delta":
                arrivals.append(time.perf_counter())
    return arrivals[0] - sent, arrivals


def measure(server: Server, runs: int, words: int) -> dict[str, float]:
    echo = new_assistant(server, "echo")
    many = new_assistant(server, f"words:{words}")
    with httpx.Client() as client:
        for _ in range(5):  # warm up connections and caches
            stream_once(client, server, echo, "warm up")
        firsts = [stream_once(client, server, echo, f"first delta {i}")[0] * 1000 for i in range(runs)]
        _, arrivals = stream_once(client, server, many, "many words")
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return {"first_p50": pct(firsts, 50), "first_p99": pct(firsts, 99), "deltas": len(arrivals), "rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--words", type=int, default=5000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="assistd-stream-"))
    model, model_proc = start_model(tmp)
    quiet = {"ASSISTD_LOG_LEVEL": "WARNING"}
    results = {}
    try:
        for mode in ("embedded", "distributed"):
            path = tmp / mode
            path.mkdir()
            if mode == "embedded":
                server = start_embedded(model, path, extra=quiet)
            else:
                server = start_distributed(model, path, workers=1, extra=quiet)
            try:
                results[mode] = measure(server, args.runs, args.words)
            finally:
                stop(server.procs)
    finally:
        stop([model_proc])
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    print(f"{args.runs} sequential streamed runs; one run of {args.words} deltas\n")
    print("| mode | first delta p50 / p99 (ms) | deltas/s to one client |")
    print("|---|---|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['first_p50']:.1f} / {r['first_p99']:.1f} | {r['rate']:.0f} ({r['deltas']:.0f} deltas) |"
        )
    print("\ntargets: first delta p50 <= 30 ms; >= 2,000 delta events/s to one client")


if __name__ == "__main__":
    main()
