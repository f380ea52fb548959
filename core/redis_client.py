"""Redis clients for ASSISTD_REDIS_URL: one server, or the primary that Redis Sentinel names.

A URL of redis-py's own (redis://, rediss://, unix://) is one server, opened with `from_url` as
always. A primary watched by Sentinel is

    redis+sentinel://[[user]:password@]host1:26379,host2:26379/service[/db][?sentinel_password=...]

with the sentinels' addresses, the name they monitor the primary under (`sentinel monitor
<service> ...`) and the database number (0 when left out). The password is the primary's (and
its replicas'); sentinels that want one of their own take `sentinel_password`.

Such a client asks the sentinels where the primary is when it opens a connection, and at most
once a second besides (redis-py alone asks only on a new connection: after a failover the old
primary goes on taking writes for 10 s or so, until Sentinel turns it into a replica, and those
writes are then lost). Seeing a new address closes the idle connections to the old one, and each
busy one when it comes back to the pool. A command that fails meanwhile on the old primary (the
connection drops, READONLY, a blocking read unblocked) is retried by redis-py's default retry (10
attempts, backoff up to 1 s), on the new primary once the sentinels name it. docs/operations.md
says what a failover can still lose.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as async_sentinel
import redis.sentinel as sync_sentinel

SCHEME = "redis+sentinel://"
# Asking a sentinel is one short round trip: a dead one must not hold a reconnect for long.
SENTINEL_TIMEOUT = 1.0
RECHECK_SECONDS = 1.0  # how often a client asks the sentinels where the primary is
# An asyncio client's connections: every blocking read (a plain create's wait, a long poll, a
# stream) holds one, and the API holds up to 2,048 requests. redis-py 8 caps a pool at 100 by
# default and refuses the 101st command (MaxConnectionsError: a 500); this is Redis's own
# default `maxclients`.
MAX_CONNECTIONS = 10_000


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    def primary_options(self) -> dict[str, Any]:
        return {"db": self.db, "username": self.username, "password": self.password}

    def sentinel_options(self) -> dict[str, Any]:
        timeouts = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
        return timeouts | ({"password": self.sentinel_password} if self.sentinel_password else {})


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME)


def parse_sentinel(url: str) -> SentinelUrl:
    """The parts of a `redis+sentinel://` URL; ValueError names what is wrong."""
    if not is_sentinel(url):
        raise ValueError(f"not a {SCHEME} URL")
    rest, _, query = url[len(SCHEME) :].partition("?")
    hosts, _, path = rest.partition("/")
    userinfo, _, hosts = hosts.rpartition("@")
    username, _, password = userinfo.partition(":")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts or len(parts) > 2:
        raise ValueError(f"expected {SCHEME}host:port[,host:port...]/service[/db]")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    return SentinelUrl(
        sentinels=[_address(h) for h in hosts.split(",")],
        service=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=options.get("sentinel_password"),
    )


def _address(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    if not name:  # no port given: Sentinel's own default
        return host, 26379
    return name.strip("[]"), int(port)


class _Pool(sync_sentinel.SentinelConnectionPool):
    checked = 0.0

    def get_connection(self, *args: Any, **options: Any) -> Any:
        if time.monotonic() - self.checked >= RECHECK_SECONDS:
            self.checked = time.monotonic()
            try:  # a new address closes the connections to the old one
                self.get_master_address()  # type: ignore[no-untyped-call]
            except sync_sentinel.MasterNotFoundError:
                pass  # the connection's own connect says so, after its retries
        return super().get_connection(*args, **options)


class _AsyncPool(async_sentinel.SentinelConnectionPool):
    checked = 0.0

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        if time.monotonic() - self.checked >= RECHECK_SECONDS:
            self.checked = time.monotonic()
            try:
                await self.get_master_address()  # type: ignore[no-untyped-call]
            except async_sentinel.MasterNotFoundError:
                pass
        return await super().get_connection(*args, **options)  # type: ignore[no-untyped-call]


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking client (dramatiq's broker, the doorbell)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    where = parse_sentinel(url)
    sentinel = sync_sentinel.Sentinel(where.sentinels, sentinel_kwargs=where.sentinel_options(), **options)
    client: redis.Redis = sentinel.master_for(
        where.service, connection_pool_class=_Pool, **where.primary_options()
    )
    return client


class _AsyncPrimary(aioredis.Redis):
    """The primary's client, which also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool: _AsyncPool = self.connection_pool  # type: ignore[assignment]
        await pool.sentinel_manager.aclose()


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client, bound to the event loop that first uses it (the event log, counters)."""
    options.setdefault("max_connections", MAX_CONNECTIONS)
    if not is_sentinel(url):
        return aioredis.Redis.from_url(url, **options)
    where = parse_sentinel(url)
    sentinel = async_sentinel.Sentinel(where.sentinels, sentinel_kwargs=where.sentinel_options(), **options)
    client: aioredis.Redis = sentinel.master_for(
        where.service, redis_class=_AsyncPrimary, connection_pool_class=_AsyncPool, **where.primary_options()
    )
    return client
