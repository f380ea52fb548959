"""Rate limits per project: requests and model tokens, each counted in a window.

A project's window opens with its first request (its first tokens, for the token count) and
lasts `rate_limit_window_seconds`; then the count starts again from zero. A fixed window rather
than a sliding one: one counter per project and kind, so a check is one increment and one read,
where a sliding window (the `limits` library's moving window) keeps a timestamp per request and
trims that list on every hit. The price: a burst at the end of one window and the start of the
next can reach twice the limit within a short span.

Distributed mode counts in Redis (core/redis_counters.py), so every API process and worker sees
the same counts; embedded mode counts in this process's memory, which the API's and the
worker's threads share.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

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
