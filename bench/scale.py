"""Scale-out: runs/s with 1, 2 and 4 worker processes, 1 s model latency, one Redis + PostgreSQL.

    python bench/scale.py [--workers 1 2 4] [--seconds 10] [--quota 0.15] [--api-workers 1] [--api-quota 0]

For each worker count: wrk creates runs for --seconds (64 connections), the script waits for
all of them, and reports steady-state runs/s plus where the CPU went during the load (machine
idle %, and each process group's share of a core), which shows where the bottleneck sits.

Two cores cannot show scaling when every process shares them: with --quota each worker runs in
a CPU cgroup of its own limited to that share of a core (cgroup v1 `cpu.cfs_quota_us`, as root),
as if each were a small node, so the workers are the bottleneck and the shared parts are not.
--api-workers runs `assistd api --workers N`; --api-quota confines each API process likewise
(with --workers-fixed, the worker count stays and the API processes vary: the API's scaling).
Targets (issue #22): >= 1.8x from 1 to 2 workers, >= 3.3x from 1 to 4, with a 1 s model.
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


def process_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(stop_event: threading.Event, out: dict[str, float]) -> None:
    (used0, idle0), t0 = cpu_ticks(), time.time()
    stop_event.wait()
    (used1, idle1), t1 = cpu_ticks(), time.time()
    hz, seconds = os.sysconf("SC_CLK_TCK"), t1 - t0
    out.update({g: (used1[g] - used0[g]) / hz / seconds for g in GROUPS})
    out["idle_pct"] = 100 * (idle1 - idle0) / hz / seconds / (os.cpu_count() or 1)


CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


def confine(pid: int, cpus: float, name: str) -> Path:
    """Move the process (all its threads) into a CPU cgroup of its own limited to `cpus` cores."""
    group = CGROUP / f"assistd-bench-{name}-{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(cpus * PERIOD_US)))
    (group / "cgroup.procs").write_text(str(pid))
    return group


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def release(groups: list[Path]) -> None:
    for group in groups:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:  # a process still in it: wait for it to go
                time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quota", type=float, default=0.0, help="each worker's share of a core (0: none)")
    parser.add_argument("--api-workers", type=int, nargs="+", default=[1])
    parser.add_argument("--api-quota", type=float, default=0.0, help="each API process's share of a core")
    args = parser.parse_args()
    counts = [(n, a) for a in args.api_workers for n in args.workers]
    tmp = Path(tempfile.mkdtemp(prefix="assistd-scale-"))
    model, model_proc = start_model(tmp)
    rows = []
    try:
        for n, a in counts:
            path = tmp / f"w{n}-a{a}"
            path.mkdir()
            server = start_distributed(model, path, workers=n, extra=BENCH_ENV, api_workers=a)
            groups: list[Path] = []
            try:
                time.sleep(1 + a)
                api, *workers = server.procs
                if args.quota:
                    groups += [confine(w.pid, args.quota, f"worker{i}") for i, w in enumerate(workers)]
                if args.api_quota:
                    pids = children(api.pid) if a > 1 else [api.pid]
                    groups += [confine(pid, args.api_quota, f"api{i}") for i, pid in enumerate(pids)]
                done, shares = threading.Event(), {}
                sampler = threading.Thread(target=sample, args=(done, shares))
                sampler.start()
                result = load(server, "slow:1000", args.seconds, 150 * args.seconds, 64)
                done.set()
                sampler.join()
                rows.append((n, a, result, shares))
            finally:
                stop(server.procs)
                release(groups)
    finally:
        stop([model_proc])
    quota = f"; each worker confined to {args.quota:g} CPU" if args.quota else ""
    quota += f"; each API process to {args.api_quota:g} CPU" if args.api_quota else ""
    print(f"\nmachine: {os.cpu_count()} cores; model latency 1 s; load {args.seconds} s per row{quota}\n")
    print(
        "| workers | API processes | runs | runs/s | vs the first row | idle % "
        "| CPU cores used: api / workers / postgres / redis / model / wrk |"
    )
    print("|---|---|---|---|---|---|---|")
    base = rows[0][2]["runs_per_s"]
    for n, a, r, s in rows:
        cores = " / ".join(f"{s[g]:.2f}" for g in GROUPS)
        print(
            f"| {n} | {a} | {r['runs']:.0f} | {r['runs_per_s']:.0f} | {r['runs_per_s'] / base:.2f}x "
            f"| {s['idle_pct']:.0f} | {cores} |"
        )
    print("\ntargets: >= 1.8x from 1 to 2 workers, >= 3.3x from 1 to 4")


if __name__ == "__main__":
    main()
