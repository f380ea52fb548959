"""Rate limits per project: requests and model tokens, each counted in a window.

A project's window opens with its first request (its first tokens, for the token count) and
lasts `rate_limit_window_seconds`; then the count starts again from zero. A fixed window rather
than a sliding one: one counter per project and kind, so a check is one increment and one read,
where a sliding window (the `limits` library's moving window) keeps a timestamp per request and
trims that list on every hit. The price: a burst at the end of one window and the start of the
next can reach twice the limit within a short span.

Distributed mode counts in Redis, so every API process and worker sees the same counts: a check
is one Lua script, one round trip. The script increments, gives a new window its expiry and
reads the tokens in one atomic step; as separate commands, a counter could expire between the
increment and the expiry and then never expire again (the project blocked for good). Embedded
mode counts in this process's memory, which the API's and the worker's threads share.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from core.config import Settings


@dataclass(frozen=True)
class Limits:
    rpm: int  # requests per window; 0: not limited
    tpm: int  # tokens per window; 0: not limited


@dataclass(frozen=True)
class Usage:
    """A project's windows as a check left them (a count not asked for is 0)."""

    requests: int  # this request included
    requests_reset: float  # seconds until the requests window ends
    tokens: int
    tokens_reset: float  # 0 when no token was spent in a window still open


class Quotas:
    """Which projects are limited, and how much (the global limits, or a project's overrides)."""

    def __init__(self, settings: Settings) -> None:
        self.default = Limits(settings.rate_limit_rpm, settings.rate_limit_tpm)
        self.overrides = {
            project: Limits(
                self.default.rpm if o.rpm is None else o.rpm, self.default.tpm if o.tpm is None else o.tpm
            )
            for project, o in settings.rate_limits.items()
        }
        self.window = settings.rate_limit_window_seconds

    @property
    def any(self) -> bool:
        """Whether any project is limited: when none is, nothing is checked or counted at all."""
        return any(limits.rpm or limits.tpm for limits in [self.default, *self.overrides.values()])

    def of(self, project: str) -> Limits | None:
        """The project's limits; None when it has none."""
        limits = self.overrides.get(project, self.default)
        return limits if limits.rpm or limits.tpm else None


class Counters(Protocol):
    async def hit(self, project: str, request: bool, tokens: bool) -> Usage:
        """Count one request (if `request`) and read the tokens spent (if `tokens`)."""

    async def spend(self, project: str, tokens: int) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    """Embedded mode: the windows live in this process. A lock, not the event loop, guards them:
    the API and the worker run on different threads."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}  # (project, kind) -> [count, ends at]

    def _add(self, key: tuple[str, str], n: int, t: float) -> tuple[int, float]:
        """The window's count after adding n, and its seconds left (a read opens no window)."""
        w = self._windows.get(key)
        if w is None or w[1] <= t:
            if not n:
                return 0, 0.0
            w = self._windows[key] = [0, t + self.window]
        w[0] += n
        return int(w[0]), w[1] - t

    async def hit(self, project: str, request: bool, tokens: bool) -> Usage:
        t = time.monotonic()
        with self._lock:
            requests, requests_reset = self._add((project, "requests"), 1, t) if request else (0, 0.0)
            spent, tokens_reset = self._add((project, "tokens"), 0, t) if tokens else (0, 0.0)
        return Usage(requests, requests_reset, spent, tokens_reset)

    async def spend(self, project: str, tokens: int) -> None:
        with self._lock:
            self._add((project, "tokens"), tokens, time.monotonic())

    async def aclose(self) -> None:
        pass


# KEYS: the requests and the tokens counter; ARGV: the window in ms, "1" to count a request,
# "1" to read the tokens. Returns requests, their ms left, tokens, their ms left.
HIT = """
local requests, requests_ms, tokens, tokens_ms = 0, 0, 0, 0
if ARGV[2] == '1' then
  requests = redis.call('INCR', KEYS[1])
  requests_ms = redis.call('PTTL', KEYS[1])
  if requests_ms < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    requests_ms = tonumber(ARGV[1])
  end
end
if ARGV[3] == '1' then
  tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
  tokens_ms = math.max(redis.call('PTTL', KEYS[2]), 0)
end
return {requests, requests_ms, tokens, tokens_ms}
"""
# KEYS: the tokens counter; ARGV: the tokens, the window in ms
SPEND = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


class RedisCounters:
    """Distributed mode: the windows are Redis keys that expire with them. A client per event
    loop (redis.asyncio is loop-bound); the scripts go by their SHA (EVALSHA), loaded once."""

    def __init__(self, url: str, namespace: str, window: float) -> None:
        self.url, self.namespace = url, namespace
        self.window_ms = max(1, round(window * 1000))
        self._clients: dict[int, tuple[Any, Any, Any]] = {}

    def _scripts(self) -> tuple[Any, Any]:
        import redis.asyncio as aioredis

        loop = id(asyncio.get_running_loop())
        got = self._clients.get(loop)
        if got is None:
            # a short timeout: a Redis that hangs lets requests through (see api/ratelimit.py)
            # rather than holding every one of them
            client = aioredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            got = self._clients[loop] = (client, client.register_script(HIT), client.register_script(SPEND))
        return got[1], got[2]

    def _key(self, project: str, kind: str) -> str:
        # the braces keep a project's two keys in one Redis Cluster slot, as a script needs
        return f"{self.namespace}:ratelimit:{{{project}}}:{kind}"

    async def hit(self, project: str, request: bool, tokens: bool) -> Usage:
        hit, _ = self._scripts()
        keys = [self._key(project, "requests"), self._key(project, "tokens")]
        args = [self.window_ms, int(request), int(tokens)]
        requests, requests_ms, spent, tokens_ms = await hit(keys=keys, args=args)
        return Usage(int(requests), requests_ms / 1000, int(spent), tokens_ms / 1000)

    async def spend(self, project: str, tokens: int) -> None:
        _, spend = self._scripts()
        await spend(keys=[self._key(project, "tokens")], args=[tokens, self.window_ms])

    async def aclose(self) -> None:
        """Close this event loop's connection."""
        got = self._clients.pop(id(asyncio.get_running_loop()), None)
        if got is not None:
            await got[0].aclose()


_counters: MemoryCounters | RedisCounters | None = None


def counters(settings: Settings) -> Counters:
    """The process's counters: Redis when redis_url is set, memory otherwise (one object, so that
    in embedded mode the worker's spending is what the API reads)."""
    global _counters
    if _counters is None:
        window = settings.rate_limit_window_seconds
        _counters = (
            RedisCounters(settings.redis_url, settings.redis_namespace, window)
            if settings.redis_url
            else MemoryCounters(window)
        )
    return _counters
