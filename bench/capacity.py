"""Capacity on paper: what one run costs PostgreSQL and Redis, and what one of each carries.

    python bench/capacity.py [--runs 200] [--concurrency 20] [--shapes sdk threads_runs responses]

Distributed mode (API + 1 worker), the scripted model at 0 ms, for each shape on a fresh
server and database: a few warm-up runs, 11 s of quiet (PostgreSQL flushes a backend's
counters at most once a second, an idle one after 10 s), then --runs runs, --concurrency at a
time, then the processes are stopped (their backends exit and flush). Shapes:
- sdk: the quickstart flow with the official SDK: thread create, message create, run
  create_and_poll, messages list (bench/sdk_flow.py's flow)
- threads_runs: `POST /v1/threads/runs`, then GET the run as `openai-poll-after-ms` says
- responses: a plain `responses.create` (the API waits on the event log)
- idle: nothing for 10 s: the sweeps' and the queue's own traffic, per second, which is taken
  off the other shapes' figures (per second of their window)
Per run, as deltas around the load:
- PostgreSQL (a database of our own on the shared server: pg_stat_database is per database):
  transactions and rows inserted / updated / deleted from pg_stat_database; round trips
  (ReadyForQuery messages), statements (Execute + Query) and parses, per process, counted by a
  proxy in this script that relays the wire protocol between the services and PostgreSQL; WAL
  bytes from pg_waldump over the load's LSN range, only the records of our database and of
  transactions that touched it (pg_current_wal_lsn is the whole cluster's); CPU of our
  database's backends (/proc).
- Redis (a redis-server of our own on a free port): commands by name from INFO commandstats
  (commands a Lua script runs count too, beside its EVALSHA), bytes in and out, its CPU.
Then pgbench (-N, 8 clients, 10 s) on a scratch database for the commit ceiling of this server.
Needs PostgreSQL on loopback as a superuser with pg_waldump and pgbench beside it (Debian's
postgresql package), redis-server, and root to read the WAL (`make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import secrets
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.runs import BENCH_ENV  # noqa: E402
from bench.scale import process_seconds  # noqa: E402
from bench.sdk_flow import flow, prepare  # noqa: E402
from tests.procs import KEY_A, PG_URL, Server, free_port, spawn, start_distributed, start_model, stop  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHAPES = ("idle", "sdk", "threads_runs", "responses")
IDLE_SECONDS = 10.0
ENV = BENCH_ENV | {"ASSISTD_POLL_AFTER_MS": "25"}  # the default (the tests' base_env says 20)

# --- a proxy in front of PostgreSQL that counts what crosses the wire ------------------------

OWNERS = ("api", "worker", "other")
WIRE = ("connections", "round_trips", "statements", "parses", "bytes_to_pg", "bytes_from_pg")
NOT_NOW = (80877103, 80877104)  # SSLRequest, GSSENCRequest: answered "N" (no) by the proxy


class WireCounts:
    """Counters in shared memory: the proxy's process writes them, the bench reads them."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.array = ctx.Array("q", len(OWNERS) * len(WIRE), lock=False)

    def add(self, owner: str, name: str, n: int = 1) -> None:
        self.array[OWNERS.index(owner) * len(WIRE) + WIRE.index(name)] += n

    def snapshot(self) -> dict[str, int]:
        values = list(self.array)
        return {
            f"{owner}.{name}": values[i * len(WIRE) + j]
            for i, owner in enumerate(OWNERS)
            for j, name in enumerate(WIRE)
        }


def owner_of(client_port: int, proxy_port: int) -> str:
    """Which of our processes holds the client end of a connection to the proxy."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dport", f"= :{proxy_port}"], capture_output=True, text=True
    ).stdout
    found = re.search(rf":{client_port}\s+\S+:{proxy_port}\s+users:\(\(\"[^\"]*\",pid=(\d+)", out)
    if not found:
        return "other"
    cmd = Path(f"/proc/{found.group(1)}/cmdline").read_bytes().replace(b"\0", b" ")
    return next((o for o in ("api", "worker") if f"assistd {o}".encode() in cmd), "other")


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Callable[[bytes], None]
) -> None:
    """Forward what arrives as it arrived (the same writes reach the other side: splitting them
    would cost PostgreSQL extra reads), and show each whole typed message to `seen`."""
    pending = b""
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            pending += chunk
            at = 0
            while len(pending) - at >= 5:
                end = at + 1 + struct.unpack("!i", pending[at + 1 : at + 5])[0]
                if end > len(pending):
                    break
                seen(pending[at : min(end, at + 6)])  # the type, the length, a status byte
                at = end
            pending = pending[at:]
            await writer.drain()
    except ConnectionError:
        pass


def to_pg(owner: str, counts: WireCounts) -> Callable[[bytes], None]:
    def seen(head: bytes) -> None:
        if head[:1] in (b"E", b"Q"):
            counts.add(owner, "statements")
        elif head[:1] == b"P":
            counts.add(owner, "parses")
        counts.add(owner, "bytes_to_pg", struct.unpack("!i", head[1:5])[0] + 1)

    return seen


def from_pg(owner: str, counts: WireCounts) -> Callable[[bytes], None]:
    ready = [0]

    def seen(head: bytes) -> None:
        if head[:1] == b"Z":  # ReadyForQuery: a round trip's end (the first ends the login)
            counts.add(owner, "round_trips", bool(ready[0]))
            ready[0] += 1
        counts.add(owner, "bytes_from_pg", struct.unpack("!i", head[1:5])[0] + 1)

    return seen


async def relay(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, port: int, counts: WireCounts
) -> None:
    owner = owner_of(client_w.get_extra_info("peername")[1], port)
    pg_r, pg_w = await asyncio.open_connection("127.0.0.1", 5432)
    try:
        while True:  # the startup packet has no type byte; answer "no" to encryption requests
            head = await client_r.readexactly(8)
            length, code = struct.unpack("!ii", head)
            if length == 8 and code in NOT_NOW:
                client_w.write(b"N")
                continue
            pg_w.write(head + await client_r.readexactly(length - 8))
            break
        counts.add(owner, "connections")
        both = [
            asyncio.ensure_future(pump(client_r, pg_w, to_pg(owner, counts))),
            asyncio.ensure_future(pump(pg_r, client_w, from_pg(owner, counts))),
        ]
        _, pending = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        pg_w.close()
        client_w.close()


def serve_proxy(port: int, counts: WireCounts) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: relay(r, w, port, counts), "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def start_proxy(counts: WireCounts) -> tuple[int, multiprocessing.process.BaseProcess]:
    port = free_port()
    proc = multiprocessing.get_context("fork").Process(target=serve_proxy, args=(port, counts), daemon=True)
    proc.start()
    for _ in range(100):
        try:
            psycopg.connect(PG_URL.replace(":5432/", f":{port}/"), connect_timeout=1).close()
            return port, proc
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("the counting proxy did not come up")


# --- PostgreSQL's and Redis's own counters ---------------------------------------------------

DB_STATS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")


def pg_stats(admin: psycopg.Connection[Any], database: str) -> tuple[dict[str, float], str]:
    """pg_stat_database's counters of `database` and the WAL position now."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        f"SELECT {', '.join(DB_STATS)}, pg_current_wal_lsn()::text FROM pg_stat_database WHERE datname = %s",
        (database,),
    ).fetchone()
    assert row is not None
    return dict(zip(DB_STATS, map(float, row[:-1]))), str(row[-1])


def backends_cpu(admin: psycopg.Connection[Any], database: str) -> dict[int, float]:
    """CPU seconds so far of each client backend serving `database`."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", (database,)
    ).fetchall()
    out = {}
    for (pid,) in rows:
        try:
            out[pid] = process_seconds(pid)
        except OSError:  # gone since
            pass
    return out


def wal_bytes(admin: psycopg.Connection[Any], database: str, start: str, end: str) -> float:
    """WAL written between two LSNs by `database`: records on its relations, and records with no
    relation (commits) of transactions that wrote some."""
    oid = admin.execute("SELECT oid FROM pg_database WHERE datname = %s", (database,)).fetchone()
    wal = admin.execute("SELECT current_setting('data_directory')").fetchone()
    assert oid and wal
    out = subprocess.run(
        [str(PG_BIN / "pg_waldump"), "-p", f"{wal[0]}/pg_wal", "-s", start, "-e", end],
        capture_output=True,
        text=True,
    ).stdout
    records, ours = [], set()
    for line in out.splitlines():
        if m := re.search(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+)", line):
            dbs = set(re.findall(r"rel \d+/(\d+)/\d+", line))
            records.append((int(m[1]), int(m[2]), dbs))
            if str(oid[0]) in dbs:
                ours.add(int(m[2]))
    return float(
        sum(size for size, tx, dbs in records if str(oid[0]) in dbs or (not dbs and tx and tx in ours))
    )


def redis_stats(client: redis.Redis) -> dict[str, float]:
    """Calls by command (`redis.<name>`), bytes in and out."""
    out = {
        f"redis.{k.removeprefix('cmdstat_')}": float(v["calls"])
        for k, v in client.info("commandstats").items()
    }
    net = client.info("stats")
    return out | {
        "redis_bytes_in": net["total_net_input_bytes"],
        "redis_bytes_out": net["total_net_output_bytes"],
    }


def start_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = spawn(args, {}, tmp / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            if redis.Redis.from_url(url).ping():
                return url, proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not come up")


# --- the shapes of load ----------------------------------------------------------------------


class Requests:
    """HTTP requests a client sent (an httpx event hook)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, _request: httpx.Request) -> None:
        self.count += 1


def http_client(server: Server, sent: Requests) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{server.url}/v1",
        headers={"Authorization": f"Bearer {KEY_A}"},
        event_hooks={"request": [sent]},
        limits=httpx.Limits(max_connections=256),
        timeout=120,
    )


async def sdk(api: AsyncOpenAI, _http: httpx.AsyncClient, n: int) -> None:
    await flow(api, "echo", defaultdict(list), n)


async def threads_runs(_api: AsyncOpenAI, http: httpx.AsyncClient, n: int) -> None:
    """Create a thread and a run in one request, then poll the run as the server says."""
    body = {"assistant_id": ASSISTANT[0], "thread": {"messages": [{"role": "user", "content": f"run {n}"}]}}
    resp = (await http.post("/threads/runs", json=body)).raise_for_status()
    run = resp.json()
    while run["status"] in ("queued", "in_progress"):
        await asyncio.sleep(int(resp.headers.get("openai-poll-after-ms", 1000)) / 1000)
        resp = (await http.get(f"/threads/{run['thread_id']}/runs/{run['id']}")).raise_for_status()
        run = resp.json()
    assert run["status"] == "completed", run


async def responses(api: AsyncOpenAI, _http: httpx.AsyncClient, n: int) -> None:
    answer = await api.responses.create(model="echo", input=f"response {n}")
    assert answer.status == "completed", answer


ASSISTANT: list[str] = []
LOADS: dict[str, Callable[[AsyncOpenAI, httpx.AsyncClient, int], Awaitable[None]]] = {
    "sdk": sdk,
    "threads_runs": threads_runs,
    "responses": responses,
}


async def drive(
    server: Server, shape: str, args: argparse.Namespace, sent: Requests, mark: Callable[[], None]
) -> None:
    """Warm up, wait for the counters to settle, `mark()`, then --runs of `shape`, --concurrency
    at a time (or IDLE_SECONDS of nothing)."""
    http = http_client(server, sent)
    api = AsyncOpenAI(
        base_url=http.base_url, api_key=KEY_A, max_retries=0, http_client=http_client(server, sent)
    )
    async with api, http:
        await prepare(api, ["echo"])
        ASSISTANT[:] = [(await api.beta.assistants.create(model="echo")).id]
        sem = asyncio.Semaphore(args.concurrency)

        async def one(n: int) -> None:
            async with sem:
                await LOADS[shape](api, http, n)

        if shape != "idle":
            await asyncio.gather(*(one(n) for n in range(5)))
        await asyncio.sleep(11)
        mark()
        sent.count = 0
        if shape == "idle":
            await asyncio.sleep(IDLE_SECONDS)
        else:
            await asyncio.gather(*(one(n) for n in range(args.runs)))


# --- one shape, measured ---------------------------------------------------------------------


class Probe:
    """Reads every counter of one server: its database's, its Redis's, the proxy's, the CPU."""

    def __init__(self, admin: psycopg.Connection[Any], database: str, url: str, wire: WireCounts) -> None:
        self.admin, self.database, self.wire = admin, database, wire
        self.redis = redis.Redis.from_url(url)
        self.redis_pid = int(self.redis.info("server")["process_id"])

    def cpu(self, server: Server) -> dict[str, Any]:
        """CPU seconds so far: our processes, Redis, and our database's backends (by pid)."""
        api, worker = server.procs
        return {
            "t": time.perf_counter(),
            "cpu.api": process_seconds(api.pid),
            "cpu.worker": process_seconds(worker.pid),
            "cpu.redis": process_seconds(self.redis_pid),
            "backends": backends_cpu(self.admin, self.database),
        }

    def counts(self) -> dict[str, Any]:
        stats, lsn = pg_stats(self.admin, self.database)
        wire = {k: float(v) for k, v in self.wire.snapshot().items()}
        return stats | redis_stats(self.redis) | wire | {"lsn": lsn}


def measure(
    shape: str, args: argparse.Namespace, tmp: Path, redis_url: str, proxy: tuple[int, WireCounts]
) -> dict[str, float]:
    """The deltas of every counter around --runs runs of `shape` (totals, not per run)."""
    port, wire = proxy
    database = f"assistd_capacity_{secrets.token_hex(3)}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        probe = Probe(admin, database, redis_url, wire)
        url = PG_URL.rsplit("/", 1)[0].replace(":5432", f":{port}") + "/" + database
        (tmp / shape).mkdir()
        model, model_proc = start_model(tmp / shape)
        server = start_distributed(
            model, tmp / shape, workers=1, extra=ENV, redis_url=redis_url, database_url=url
        )
        before: dict[str, Any] = {}
        try:
            asyncio.run(
                drive(
                    server,
                    shape,
                    args,
                    sent := Requests(),
                    lambda: before.update(probe.cpu(server) | probe.counts()),
                )
            )
            after = probe.cpu(server)
        finally:
            stop(server.procs + [model_proc])
        for _ in range(100):  # the backends exit, and flush their counters as they go
            if not backends_cpu(admin, database):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        after |= probe.counts()
        out = {k: after[k] - before.get(k, 0.0) for k in after if k not in ("t", "backends", "lsn")}
        out["cpu.pg"] = sum(s - before["backends"].get(pid, 0.0) for pid, s in after["backends"].items())
        out["wal_bytes"] = wal_bytes(admin, database, before["lsn"], after["lsn"])
        out |= {"window": after["t"] - before["t"], "requests": float(sent.count)}
        probe.redis.close()
        admin.execute(f'DROP DATABASE "{database}"')
    return out


def pgbench(seconds: int) -> float:
    """Transactions per second of pgbench's simple-update script (-N), 8 clients, on a scratch
    database of the shared server."""
    database = f"assistd_capacity_pgbench_{secrets.token_hex(3)}"
    base = PG_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        try:
            bench = str(PG_BIN / "pgbench")
            subprocess.run([bench, "-i", "-q", f"{base}/{database}"], check=True, capture_output=True)
            out = subprocess.run(
                [bench, "-N", "-c", "8", "-j", "2", "-T", str(seconds), f"{base}/{database}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            admin.execute(f'DROP DATABASE "{database}"')
    found = re.search(r"tps = ([\d.]+)", out)
    assert found, out
    return float(found.group(1))


# --- per run, and what one server carries ----------------------------------------------------


def per_run(got: dict[str, float], idle: dict[str, float], runs: int) -> dict[str, float]:
    """Each counter per run, less the idle traffic of as many seconds as the load's window."""
    rate = {k: v / idle["window"] for k, v in idle.items()}
    return {
        k: (v - rate.get(k, 0.0) * got["window"]) / runs
        for k, v in got.items()
        if k not in ("window", "redis.info")
    }


# What dramatiq's Redis script (dramatiq/brokers/redis/dispatch.lua) runs; Assistd's own code
# calls none of these itself (it sends EVALSHA, LPUSH/LTRIM/BRPOP for the doorbell, XADD/EXPIRE/
# XREAD for the event log, LLEN for the queue's depth), so what is left was sent by a client.
DISPATCH_LUA = (
    "zadd", "hset", "rpush", "lpop", "sadd", "hmget", "srem", "hdel", "hexists", "hget",
    "zrangebyscore", "smembers", "del", "keys", "zrem", "hlen", "scard",
)  # fmt: skip

ROWS = [
    ("HTTP requests", "requests", 1, "{:.1f}"),
    ("PG transactions (commit + rollback)", "xacts", 1, "{:.1f}"),
    ("PG rows inserted / updated / deleted", "rows", 1, "{}"),
    ("PG round trips: API / worker", "rt", 1, "{}"),
    ("PG statements (Execute + Query) / of them parsed", "stmts", 1, "{}"),
    ("PG bytes to / from the server", "pgbytes", 1, "{}"),
    ("WAL bytes (our database's records)", "wal_bytes", 1, "{:,.0f}"),
    ("Redis commands: all / sent by a client (the rest ran in dramatiq's script)", "redis", 1, "{}"),
    ("Redis bytes in / out", "redisbytes", 1, "{}"),
    ("CPU ms: API / worker", "ours", 1, "{}"),
    ("CPU ms: PostgreSQL backends / Redis", "theirs", 1, "{}"),
]


def derived(r: dict[str, float]) -> dict[str, Any]:
    redis_total = sum(v for k, v in r.items() if k.startswith("redis.") and k != "redis.info")
    return r | {
        "xacts": r["xact_commit"] + r["xact_rollback"],
        "rows": f"{r['tup_inserted']:.1f} / {r['tup_updated']:.1f} / {r['tup_deleted']:.1f}",
        "rt": f"{r['api.round_trips']:.1f} / {r['worker.round_trips']:.1f}",
        "stmts": f"{r['api.statements'] + r['worker.statements']:.1f} / {r['api.parses'] + r['worker.parses']:.1f}",
        "pgbytes": f"{sum(r[f'{o}.bytes_to_pg'] for o in OWNERS):,.0f} / {sum(r[f'{o}.bytes_from_pg'] for o in OWNERS):,.0f}",
        "redis": f"{redis_total:.1f} / {redis_total - sum(r.get(f'redis.{c}', 0.0) for c in DISPATCH_LUA):.1f}",
        "redisbytes": f"{r['redis_bytes_in']:,.0f} / {r['redis_bytes_out']:,.0f}",
        "ours": f"{1000 * r['cpu.api']:.2f} / {1000 * r['cpu.worker']:.2f}",
        "theirs": f"{1000 * r['cpu.pg']:.2f} / {1000 * r['cpu.redis']:.2f}",
    }


def report(results: dict[str, dict[str, float]], args: argparse.Namespace, tps: float, load: float) -> None:
    shapes = [s for s in results if s != "idle"]
    idle = results["idle"]
    rows = {s: derived(per_run(results[s], idle, args.runs)) for s in shapes}
    print(
        f"\nmachine: {os.cpu_count()} cores, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{time.strftime('%Y-%m-%d')}; API + 1 worker, 0 ms scripted model; {args.runs} runs per shape, "
        f"{args.concurrency} in flight\n"
    )
    print("| per run | " + " | ".join(shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    for label, key, _, fmt in ROWS:
        print(f"| {label} | " + " | ".join(fmt.format(rows[s][key]) for s in shapes) + " |")
    print("\nRedis commands per run, by name:")
    names = sorted(
        {k for s in shapes for k, v in rows[s].items() if k.startswith("redis.") and abs(v) >= 0.05},
        key=lambda k: -rows[shapes[0]].get(k, 0.0),
    )
    for name in names:
        print(
            f"  {name.removeprefix('redis.'):<16}"
            + "".join(f"{rows[s].get(name, 0.0):>14.2f}" for s in shapes)
        )
    per_s = {k: v / idle["window"] for k, v in idle.items()}
    print(
        f"\nidle (taken off the above): {per_s['xact_commit']:.1f} PG transactions/s, "
        f"{per_s['api.round_trips'] + per_s['worker.round_trips']:.1f} round trips/s, "
        f"{sum(v for k, v in per_s.items() if k.startswith('redis.') and k != 'redis.info'):.1f} Redis commands/s"
    )
    print(f"\npgbench -N, 8 clients, {args.pgbench_seconds} s: {tps:,.0f} transactions/s on this server")
    print("\n| what one carries, runs/s | " + " | ".join(shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    lines = {
        "PostgreSQL, per core of backend CPU (1000 / CPU ms)": lambda r: 1 / r["cpu.pg"],
        "PostgreSQL, pgbench's commit rate / transactions per run": lambda r: tps / r["xacts"],
        "Redis, one core (1000 / CPU ms)": lambda r: 1 / r["cpu.redis"],
        "one worker process, per core": lambda r: 1 / r["cpu.worker"],
        "one API process, per core": lambda r: 1 / r["cpu.api"],
    }
    for label, f in lines.items():
        print(f"| {label} | " + " | ".join(f"{f(rows[s]):,.0f}" for s in shapes) + " |")
    print("\nratios: worker cores one PostgreSQL core keeps up with / worker cores one Redis keeps up with")
    for s in shapes:
        r = rows[s]
        print(
            f"  {s}: {r['cpu.pg'] and r['cpu.worker'] / r['cpu.pg']:.1f} / {r['cpu.worker'] / r['cpu.redis']:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--shapes", nargs="+", choices=SHAPES[1:], default=list(SHAPES[1:]))
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="assistd-capacity-"))
    redis_url, redis_proc = start_redis(tmp)
    wire = WireCounts()
    port, proxy = start_proxy(wire)
    try:
        results = {
            shape: measure(shape, args, tmp, redis_url, (port, wire)) for shape in ["idle", *args.shapes]
        }
        tps = pgbench(args.pgbench_seconds)
    finally:
        proxy.terminate()
        stop([redis_proc])
    report(results, args, tps, load)


if __name__ == "__main__":
    main()
