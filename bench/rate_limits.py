"""CPU of one rate limit check (api/ratelimit.py's Limiter.check), as the Gate makes it:

    python bench/rate_limits.py [--checks 3000]

in memory (embedded mode), in Redis one at a time and several at once (they share a pipeline:
core/redis_counters.py), and for a project without limits while others have some. With no
limit configured at all there is no check to measure: the Gate holds no Limiter.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.ratelimit import Limiter  # noqa: E402
from core.config import Settings  # noqa: E402
from core.quotas import MemoryCounters, Quotas  # noqa: E402
from core.redis_counters import RedisCounters  # noqa: E402
from tests.procs import REDIS_URL  # noqa: E402

SCOPE: dict[str, Any] = {"method": "GET", "path": "/v1/assistants"}


async def cpu_per_check(limiter: Limiter, checks: int, at_once: int = 1) -> float:
    """Microseconds of this process's CPU per check."""
    rounds = max(1, checks // at_once)
    await limiter.check(SCOPE, "p")  # connects
    started = time.process_time()
    for _ in range(rounds):
        if at_once == 1:  # as a lone request makes it (gather's tasks would cost more than a check)
            await limiter.check(SCOPE, "p")
        else:
            await asyncio.gather(*[limiter.check(SCOPE, "p") for _ in range(at_once)])
    return (time.process_time() - started) / (rounds * at_once) * 1e6


async def main(checks: int) -> None:
    limited = Quotas(Settings(rate_limit_rpm=10**9, rate_limit_tpm=10**9))
    print(f"in memory: {await cpu_per_check(Limiter(limited, MemoryCounters(60)), checks):.1f} us")
    redis = RedisCounters(REDIS_URL, "assistd-bench-" + secrets.token_hex(4), 60)
    for at_once in (1, 5, 50):
        used = await cpu_per_check(Limiter(limited, redis), checks, at_once)
        print(f"in Redis, {at_once} at once: {used:.1f} us")
    await redis.aclose()
    others = Quotas(Settings(rate_limits='{"other": {"rpm": 5}}'))  # type: ignore[arg-type]
    used = await cpu_per_check(Limiter(others, MemoryCounters(60)), checks)
    print(f"a project without limits: {used:.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=3000)
    asyncio.run(main(parser.parse_args().checks))
