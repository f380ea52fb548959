"""PostgreSQL connections each process holds under a run load (docs/operations.md, "Sizing").

    python bench/connections.py [--seconds 10] [--connections 64] [--latency-ms 0 1000] [--pool-size 10]

API + 1 worker on PostgreSQL directly; wrk creates runs for --seconds, as in bench/runs.py, with
the scripted model answering after --latency-ms. Every 50 ms the test database's connections are
read from pg_stat_activity and tied to their process (ss -tnp). Printed per process: the most
connections open at once (its pools' high-water mark) and the most busy at once (a statement
running or a transaction open), with runs/s. Needs Redis, PostgreSQL and wrk (`make services`,
`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import BENCH_ENV, throughput_wrk  # noqa: E402

from tests.procs import PG_URL, Server, start_distributed, start_model, stop  # noqa: E402

SS_LINE = re.compile(r":(\d+)\s+\S+:5432\s+users:\(\(\"[^\"]*\",pid=(\d+)")


class Sampler(threading.Thread):
    """Samples who holds which connection of `database` until stopped."""

    def __init__(self, server: Server, database: str) -> None:
        super().__init__(daemon=True)
        self.names = {p.pid: name for p, name in zip(server.procs, ["api", "worker"])}
        self.database = database
        self.stopping = threading.Event()
        self.open: Counter[str] = Counter()  # process -> most connections open at once
        self.busy: Counter[str] = Counter()  # process -> most connections busy at once

    def owners(self) -> dict[int, str]:
        """Client port -> process name, for connections to PostgreSQL."""
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", "dport", "= :5432"], capture_output=True, text=True
        ).stdout
        return {
            int(m.group(1)): self.names.get(int(m.group(2)), "other")
            for m in map(SS_LINE.search, out.splitlines())
            if m
        }

    def run(self) -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            while not self.stopping.wait(0.05):
                rows = conn.execute(
                    "SELECT client_port, state FROM pg_stat_activity WHERE datname = %s",
                    (self.database,),
                ).fetchall()
                owners = self.owners()
                opened: Counter[str] = Counter()
                busy: Counter[str] = Counter()
                for port, state in rows:
                    name = owners.get(port, "other")
                    opened[name] += 1
                    busy[name] += state != "idle"
                for name in opened:
                    self.open[name] = max(self.open[name], opened[name])
                    self.busy[name] = max(self.busy[name], busy[name])


def measure(latency_ms: float, seconds: int, connections: int, pool_size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="assistd-conns-"))
    model, model_proc = start_model(tmp, latency_ms=latency_ms)
    env = BENCH_ENV | {"ASSISTD_DATABASE_POOL_SIZE": str(pool_size)}
    server = start_distributed(model, tmp, workers=1, extra=env)
    try:
        sampler = Sampler(server, server.env["ASSISTD_DATABASE_URL"].rsplit("/", 1)[1])
        sampler.start()
        got = throughput_wrk(server, "echo", seconds, connections)
        sampler.stopping.set()
        sampler.join()
        print(
            f"pools of {pool_size}, model {latency_ms:.0f} ms, wrk {connections} connections {seconds} s: "
            f"{got['runs']} runs, {got['runs_per_s']:.0f} runs/s"
        )
        for name in ("api", "worker", "other"):
            if name in sampler.open:
                print(f"  {name}: at most {sampler.open[name]} open, {sampler.busy[name]} busy at once")
    finally:
        stop(server.procs + [model_proc])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 1000.0])
    parser.add_argument("--pool-size", type=int, default=10, help="ASSISTD_DATABASE_POOL_SIZE")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for latency in args.latency_ms:
        measure(latency, args.seconds, args.connections, args.pool_size)


if __name__ == "__main__":
    main()
