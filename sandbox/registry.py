"""Session registry: session key -> container, engine, last use, input files copied.

Two backends with one shape (as dramatiq has a stub for every broker): `RedisRegistry` when
workers share Redis, so a run on any process or machine finds (or knowingly loses) its session;
`MemoryRegistry` for embedded mode. Each also keeps a per-key lock (one process creates a
session, one execution at a time), a "seen" mark (a key that had a session, to report a reset
once it is lost) and owner heartbeats (the reaper's proof that a pool's owner still lives).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Protocol

from redis import asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from sandbox.errors import SandboxBusy

SEEN_SECONDS = 7 * 24 * 3600  # how long a lost session is still reported as a reset


@dataclass
class Session:
    container: str
    engine: str
    last_used: float = field(default_factory=time.time)
    files: list[str] = field(default_factory=list)  # file ids already copied to /mnt/data
    project: str = ""  # whose session it is, for the per-project cap


class Registry(Protocol):
    async def get(self, key: str) -> Session | None: ...
    async def put(self, key: str, session: Session) -> None: ...
    async def drop(self, key: str) -> None: ...  # forget the session and that it existed
    async def seen(self, key: str) -> bool: ...
    async def live(self) -> list[Session]: ...  # every session not expired
    async def keys(self, prefix: str) -> list[str]: ...  # the keys of live sessions that start so
    async def referenced(self) -> dict[str, float]: ...  # container id -> last used, live sessions
    def lock(self, key: str, seconds: float) -> AbstractAsyncContextManager[None]: ...
    async def beat(self, owner: str, ttl: float) -> None: ...  # ttl 0: this owner is gone
    async def alive(self, owner: str) -> bool | None: ...  # None: cannot tell
    async def close(self) -> None: ...


class MemoryRegistry:
    """This process only. Expiry is done by the reaper (it compares last_used with idle_seconds)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.sessions: dict[str, Session] = {}
        self.known: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str) -> Session | None:
        session = self.sessions.get(key)
        if session is not None and time.time() - session.last_used > self.idle_seconds:
            del self.sessions[key]
            return None
        return session

    async def put(self, key: str, session: Session) -> None:
        self.sessions[key] = session
        self.known.add(key)

    async def drop(self, key: str) -> None:
        self.sessions.pop(key, None)
        self.known.discard(key)

    async def seen(self, key: str) -> bool:
        return key in self.known

    async def live(self) -> list[Session]:
        now = time.time()
        for key in [k for k, s in self.sessions.items() if now - s.last_used > self.idle_seconds]:
            del self.sessions[key]
        return list(self.sessions.values())

    async def referenced(self) -> dict[str, float]:
        return {s.container: s.last_used for s in await self.live()}

    async def keys(self, prefix: str) -> list[str]:
        await self.live()  # (forgets the expired)
        return [k for k in self.sessions if k.startswith(prefix)]

    @asynccontextmanager
    async def lock(self, key: str, seconds: float) -> AsyncIterator[None]:
        lock = self.locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), seconds)
        except TimeoutError:
            raise SandboxBusy(f"session {key} is busy") from None
        try:
            yield
        finally:
            lock.release()
            if not lock.locked() and not lock._waiters:
                self.locks.pop(key, None)

    async def beat(self, owner: str, ttl: float) -> None:
        pass

    async def alive(self, owner: str) -> bool | None:
        """Without a shared store, only an owner on this host can be checked: by its pid, when
        the owner reads `host/pid/...` or `host:pid:...` (as default_owner and the worker name it)."""
        host, pid = (re.split(r"[/:]", owner) + [""])[:2]
        if host != socket.gethostname() or not pid.isdigit():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def close(self) -> None:
        pass


LOCK_LEASE = 10.0


async def _renew(lock: Lock) -> None:
    while True:
        await asyncio.sleep(LOCK_LEASE / 3)
        try:
            await lock.reacquire()
        except LockError:
            return  # lost it: nothing more to renew


class RedisRegistry:
    """Shared by every worker: sessions expire with the key's TTL (idle_seconds, renewed on use)."""

    def __init__(self, client: aioredis.Redis, namespace: str, idle_seconds: float) -> None:
        self.redis = client
        self.prefix = f"{namespace}:sandbox"
        self.idle_seconds = idle_seconds

    async def get(self, key: str) -> Session | None:
        raw = await self.redis.get(f"{self.prefix}:session:{key}")
        return Session(**json.loads(raw)) if raw else None

    async def put(self, key: str, session: Session) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                f"{self.prefix}:session:{key}", json.dumps(asdict(session)), px=int(self.idle_seconds * 1000)
            )
            pipe.set(f"{self.prefix}:seen:{key}", 1, ex=SEEN_SECONDS)
            await pipe.execute()

    async def drop(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:session:{key}", f"{self.prefix}:seen:{key}")

    async def seen(self, key: str) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}:seen:{key}"))

    async def live(self) -> list[Session]:
        keys = [k async for k in self.redis.scan_iter(f"{self.prefix}:session:*", count=500)]
        out: list[Session] = []
        for i in range(0, len(keys), 500):
            out += [Session(**json.loads(raw)) for raw in await self.redis.mget(keys[i : i + 500]) if raw]
        return out

    async def referenced(self) -> dict[str, float]:
        return {s.container: s.last_used for s in await self.live()}

    async def keys(self, prefix: str) -> list[str]:
        start = f"{self.prefix}:session:"
        pattern = start + prefix + "*"
        return [k.decode()[len(start) :] async for k in self.redis.scan_iter(pattern, count=500)]

    @asynccontextmanager
    async def lock(self, key: str, seconds: float) -> AsyncIterator[None]:
        """Wait up to `seconds` for the key. The lock lives LOCK_LEASE seconds and its holder
        renews it, so a holder that dies (a killed worker) frees the session within seconds."""
        lock = self.redis.lock(f"{self.prefix}:lock:{key}", timeout=LOCK_LEASE, blocking_timeout=seconds)
        if not await lock.acquire():
            raise SandboxBusy(f"session {key} is busy")
        renewing = asyncio.create_task(_renew(lock))
        try:
            yield
        finally:
            renewing.cancel()
            try:
                await lock.release()
            except LockError:
                pass  # expired meanwhile (Redis was unreachable for a while)

    async def beat(self, owner: str, ttl: float) -> None:
        if ttl > 0:
            await self.redis.set(f"{self.prefix}:owner:{owner}", 1, px=int(ttl * 1000))
        else:
            await self.redis.delete(f"{self.prefix}:owner:{owner}")

    async def alive(self, owner: str) -> bool | None:
        return bool(await self.redis.exists(f"{self.prefix}:owner:{owner}"))

    async def close(self) -> None:
        await self.redis.aclose()
