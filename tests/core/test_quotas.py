"""Rate limit counters, in memory and in Redis: a window counts, expires and starts again, and
tokens spent are what a check reads; the projects' limits from the settings."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from core.config import Settings
from core.quotas import Counters, Limits, MemoryCounters, Quotas
from core.redis_counters import RedisCounters
from tests.conftest import REDIS_URL, unavailable
from tests.procs import redis_available

WINDOW = 0.3


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters(WINDOW)
        return
    if not redis_available():
        unavailable("Redis")
    yield RedisCounters(REDIS_URL, "assistd-test-" + secrets.token_hex(4), WINDOW)


def test_a_window_counts_then_starts_again(counters: Counters) -> None:
    async def go() -> None:
        hits = [await counters.hit("p", request=True, tokens=False) for _ in range(3)]
        assert [h.requests for h in hits] == [1, 2, 3]
        assert all(0 < h.requests_reset <= WINDOW + 1e-6 for h in hits)
        assert (await counters.hit("q", request=True, tokens=False)).requests == 1  # its own window
        await asyncio.sleep(WINDOW + 0.05)
        assert (await counters.hit("p", request=True, tokens=False)).requests == 1
        await counters.aclose()

    asyncio.run(go())


def test_tokens_spent_are_read_until_their_window_ends(counters: Counters) -> None:
    async def go() -> None:
        fresh = await counters.hit("p", request=False, tokens=True)
        assert (fresh.requests, fresh.tokens, fresh.tokens_reset) == (0, 0, 0)
        await counters.spend("p", 40)
        await counters.spend("p", 2)
        spent = await counters.hit("p", request=False, tokens=True)
        assert spent.tokens == 42 and 0 < spent.tokens_reset <= WINDOW + 1e-6
        await asyncio.sleep(WINDOW + 0.05)
        assert (await counters.hit("p", request=False, tokens=True)).tokens == 0
        await counters.aclose()

    asyncio.run(go())


def test_overrides_fall_back_to_the_global_limits() -> None:
    settings = Settings(
        rate_limit_rpm=10,
        rate_limits='{"big": {"rpm": 100}, "free": {"rpm": 0}, "metered": {"tpm": 5}}',  # type: ignore[arg-type]
    )
    quotas = Quotas(settings)
    assert quotas.any
    assert quotas.of("anyone") == Limits(10, 0)
    assert quotas.of("big") == Limits(100, 0)
    assert quotas.of("free") is None
    assert quotas.of("metered") == Limits(10, 5)


def test_no_limits_by_default() -> None:
    assert not Quotas(Settings()).any
    assert Quotas(Settings(rate_limits='{"one": {"tpm": 5}}')).any  # type: ignore[arg-type]
