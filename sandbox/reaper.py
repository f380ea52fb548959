"""The reaper: removes sandbox containers nobody will use again.

A container of our namespace is removed when it has stopped; or, unless a live session points
at it or this process holds it (pool, execution in flight), when its owner is this process (an
expired session; `GRACE_SECONDS` spare a container just being started) or when its owner is
known to be dead (no heartbeat in Redis; in embedded mode, a dead pid on this host).
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.engine import Engine
from sandbox.registry import Registry

GRACE_SECONDS = 60.0


async def reap(engine: Engine, registry: Registry, keep: set[str]) -> int:
    """Remove orphaned and expired containers now; returns how many were removed."""
    referenced = await registry.referenced()
    owners: dict[str, bool | None] = {}
    removed = 0
    for container in await engine.list():
        if await _orphan(container, engine.config.owner, registry, keep | referenced.keys(), owners):
            await engine.remove(container["Id"])
            removed += 1
    return removed


async def _orphan(
    container: dict[str, Any], me: str, registry: Registry, keep: set[str], owners: dict[str, bool | None]
) -> bool:
    if container["Id"] in keep:
        return False
    if container["State"] in ("exited", "dead"):
        return True
    owner = container["Labels"].get("assistd.owner", "")
    if owner == me:
        return bool(time.time() - container["Created"] > GRACE_SECONDS)
    if owner not in owners:
        owners[owner] = await registry.alive(owner)
    return owners[owner] is False
