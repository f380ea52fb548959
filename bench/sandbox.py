"""Code interpreter sandbox latency against the real Docker engine (image assistd-sandbox:1).

    python bench/sandbox.py [--n 200] [--redis redis://127.0.0.1:6379/0]

Measured, each as p50/p99 in ms:
- warm exec: `print(1)` in a session that already ran (the hot path: attach + runner round trip);
- new session from the pool: execute() on a new key while a warm container is ready;
- cold start: execute() on a new key with an empty pool (create + start + interpreter start-up);
- 20 concurrent sessions: 20 new keys at once with the default pool of 2 (most start cold), then
  `print(1)` in all 20 at once.
Targets (issue): warm exec p50 <= 50 ms, new session from the pool p50 <= 150 ms.
Everything is removed at the end (a unique namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sandbox import SandboxConfig, Sandboxes  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(name: str, ms: list[float], target: float | None = None) -> None:
    line = f"{name:<34} p50 {pct(ms, 50):8.1f} ms   p99 {pct(ms, 99):8.1f} ms   (n={len(ms)})"
    if target is not None:
        line += f"   target p50 <= {target:g} ms: {'met' if pct(ms, 50) <= target else 'NOT met'}"
        line += f" ({target / pct(ms, 50):.1f}x margin)"
    print(line, flush=True)


async def timed(op: Awaitable[object]) -> float:
    t = time.perf_counter()
    result = await op
    assert getattr(result, "status", "ok") == "ok", result
    return (time.perf_counter() - t) * 1000


async def wait_pool(sbx: Sandboxes, n: int) -> None:
    while len(sbx.pool.ready) < n:
        await asyncio.sleep(0.02)


async def bench(n: int, redis_url: str | None) -> None:
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    warm = Sandboxes(SandboxConfig(namespace=ns, redis_url=redis_url, pool_size=1))
    cold = Sandboxes(SandboxConfig(namespace=ns, redis_url=redis_url, pool_size=0))
    crowd = Sandboxes(SandboxConfig(namespace=ns, redis_url=redis_url, pool_size=2))
    await warm.start()
    reason = await warm.unavailable()
    if reason:
        sys.exit(f"sandbox unavailable: {reason}")
    await cold.start()
    try:
        await warm.execute("warm", "x = 1")
        report("warm exec print(1)", [await timed(warm.execute("warm", "print(1)")) for _ in range(n)], 50)
        pooled = []
        for i in range(max(10, n // 10)):
            await wait_pool(warm, 1)
            pooled.append(await timed(warm.execute(f"pool-{i}", "print(1)")))
        report("new session from the warm pool", pooled, 150)
        report(
            "cold start (empty pool)", [await timed(cold.execute(f"cold-{i}", "print(1)")) for i in range(10)]
        )
        await crowd.start()
        await wait_pool(crowd, 2)
        t = time.perf_counter()
        first = await asyncio.gather(*(timed(crowd.execute(f"crowd-{i}", "print(1)")) for i in range(20)))
        wall = (time.perf_counter() - t) * 1000
        report("20 concurrent new sessions", list(first))
        print(f"{'':<34} all 20 ready after {wall:.0f} ms", flush=True)
        again = await asyncio.gather(*(timed(crowd.execute(f"crowd-{i}", "print(1)")) for i in range(20)))
        report("20 concurrent warm execs", list(again))
    finally:
        for sbx in (warm, cold, crowd):
            await sbx.close()
        cleaner = Sandboxes(SandboxConfig(namespace=ns, pool_size=0)).engine  # sessions stay after close()
        if await cleaner.connect() is None:
            await asyncio.gather(*(cleaner.remove(c["Id"]) for c in await cleaner.list()))
        await cleaner.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="warm executions")
    parser.add_argument("--redis", default=None, help="registry in Redis (default: in process)")
    args = parser.parse_args()
    asyncio.run(bench(args.n, args.redis))


if __name__ == "__main__":
    main()
