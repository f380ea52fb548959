"""The Redis URL forms (core/redis_client.py): redis-py's own, and redis+sentinel://."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from core.redis_client import SentinelUrl, async_client, parse_sentinel, sync_client
from sandbox.registry import RedisRegistry, Session
from tests.conftest import ServiceMissing, unavailable
from tests.sentinel import SentinelGroup


def test_sentinel_url() -> None:
    got = parse_sentinel("redis+sentinel://:s3cret@a:26379,b:26380,c/mymaster/2?sentinel_password=x")
    assert got == SentinelUrl(
        sentinels=[("a", 26379), ("b", 26380), ("c", 26379)],
        service="mymaster",
        db=2,
        password="s3cret",
        sentinel_password="x",
    )
    assert got.primary_options() == {"db": 2, "username": None, "password": "s3cret"}
    assert got.sentinel_options()["password"] == "x"


def test_sentinel_url_defaults() -> None:
    got = parse_sentinel("redis+sentinel://user:pw@[::1]:26379/cache")
    assert (got.sentinels, got.service, got.db, got.username, got.password) == (
        [("::1", 26379)],
        "cache",
        0,
        "user",
        "pw",
    )
    assert "password" not in got.sentinel_options()


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "redis+sentinel://a:26379", "redis+sentinel:///mymaster"]
)
def test_not_a_sentinel_url(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel(url)


def test_clients_follow_a_failover(tmp_path: Path) -> None:
    """Both clients reach the primary, and the new one after `SENTINEL FAILOVER`; within a second
    or two, not once Sentinel demotes the old one (about 10 s later). The sandbox registry works
    over the asyncio one, as the worker opens it."""
    try:
        group = SentinelGroup(tmp_path).start()
    except ServiceMissing as exc:
        unavailable(str(exc))
        raise
    sync = sync_client(group.url)

    async def registry_round(key: str) -> str | None:
        client = async_client(group.url)
        registry = RedisRegistry(client, f"test-{key}", idle_seconds=60)
        try:
            await registry.put(key, Session("container", "engine"))
            got = await registry.get(key)
            return got.container if got else None
        finally:
            await registry.close()  # closes the sentinels' connections too: no ResourceWarning

    try:
        sync.set("k", "before")
        assert asyncio.run(registry_round("a")) == "container"
        new = next(p for p in group.ports if p != group.primary())
        group.start_failover()
        deadline = time.time() + 10
        while group.primary() != new:  # from here on the new primary copies nothing from the old
            assert time.time() < deadline, "no failover"
            time.sleep(0.05)
        deadline, n = time.time() + 5, 0
        while not _lands_on(sync, group, new, n := n + 1):
            assert time.time() < deadline, "the client still writes to the old primary"
            time.sleep(0.1)
        assert sync.get("k") == b"before"  # replicated before the switch
        assert asyncio.run(registry_round("b")) == "container"
        assert group.ask(new, "EXISTS", "test-b:sandbox:session:b") == 1
    finally:
        sync.close()
        group.stop()


def _lands_on(client: redis.Redis, group: SentinelGroup, port: int, n: int) -> bool:
    """Whether the client's n-th write is on the server at `port`."""
    try:
        client.set("probe", n)
        return group.ask(port, "GET", "probe") == str(n)
    except redis.RedisError:
        return False
