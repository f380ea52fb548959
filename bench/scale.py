"""Scale-out: runs/s with 1, 2 and 4 worker processes, 1 s model latency, one Redis + PostgreSQL.

    python bench/scale.py [--workers 1 2 4] [--seconds 10]

For each worker count: wrk creates runs for --seconds (64 connections), the script waits for
all of them, and reports steady-state runs/s plus where the CPU went during the load (machine
idle %, and each process group's share of a core), which shows where the bottleneck sits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import BENCH_ENV, load  # noqa: E402
from tests.procs import start_distributed, start_model, stop  # noqa: E402

GROUPS = {
    "api": "assistd api",
    "workers": "assistd worker",
    "postgres": "postgres",
    "redis": "redis-server",
    "model": "scripted_model",
    "wrk": "wrk",
}


def cpu_ticks() -> tuple[dict[str, int], int]:
    """CPU ticks used so far by each process group, and the machine's idle ticks."""
    used = dict.fromkeys(GROUPS, 0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for group, needle in GROUPS.items():
            if needle in cmd:
                used[group] += int(fields[11]) + int(fields[12])
    idle = int(Path("/proc/stat").read_text().split("\n")[0].split()[4])
    return used, idle


def sample(stop_event: threading.Event, out: dict[str, float]) -> None:
    (used0, idle0), t0 = cpu_ticks(), time.time()
    stop_event.wait()
    (used1, idle1), t1 = cpu_ticks(), time.time()
    hz, seconds = os.sysconf("SC_CLK_TCK"), t1 - t0
    out.update({g: (used1[g] - used0[g]) / hz / seconds for g in GROUPS})
    out["idle_pct"] = 100 * (idle1 - idle0) / hz / seconds / (os.cpu_count() or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="assistd-scale-"))
    model, model_proc = start_model(tmp)
    rows = []
    try:
        for n in args.workers:
            path = tmp / f"w{n}"
            path.mkdir()
            server = start_distributed(model, path, workers=n, extra=BENCH_ENV)
            try:
                time.sleep(1)
                done, shares = threading.Event(), {}
                sampler = threading.Thread(target=sample, args=(done, shares))
                sampler.start()
                result = load(server, "slow:1000", args.seconds, 150 * args.seconds, 64)
                done.set()
                sampler.join()
                rows.append((n, result, shares))
            finally:
                stop(server.procs)
    finally:
        stop([model_proc])
    print(f"\nmachine: {os.cpu_count()} cores; model latency 1 s; load {args.seconds} s per worker count\n")
    print(
        "| workers | runs | runs/s | vs 1 worker | idle % | CPU cores used: api / workers / postgres / redis / model / wrk |"
    )
    print("|---|---|---|---|---|---|")
    base = rows[0][1]["runs_per_s"]
    for n, r, s in rows:
        cores = " / ".join(f"{s[g]:.2f}" for g in GROUPS)
        print(
            f"| {n} | {r['runs']:.0f} | {r['runs_per_s']:.0f} | {r['runs_per_s'] / base:.2f}x | {s['idle_pct']:.0f} | {cores} |"
        )
    print("\ntarget: >= 1.8x from 1 to 2 workers")


if __name__ == "__main__":
    main()
