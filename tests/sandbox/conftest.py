"""A real Docker engine and image, Redis on loopback; a unique namespace per module, cleaned after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
import redis

from sandbox import SandboxConfig, Sandboxes
from sandbox.engine import Engine
from tests.conftest import unavailable
from tests.procs import REDIS_URL

T = TypeVar("T")
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:1")  # another tag: a runner being changed


class Loop:
    """One event loop for a module's tests, so Sandboxes (and its pool) outlive a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def run() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.loop.close()


@pytest.fixture(scope="module")
def namespace(run: Loop) -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex[:10]}"
    engine = Engine(SandboxConfig(namespace=ns, image=IMAGE))
    reason = run(engine.connect())
    run(engine.close())
    if reason is not None:
        unavailable(f"the sandbox engine ({reason})")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        unavailable("Redis")
    yield ns
    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"assistd.namespace={ns}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):  # being removed
            c.remove(force=True)
    client.close()
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{ns}:*"):
        r.delete(key)
    r.close()


def config(namespace: str, **kw: Any) -> SandboxConfig:
    base: dict[str, Any] = dict(
        image=IMAGE,
        namespace=namespace,
        redis_url=REDIS_URL,
        timeout_seconds=20,
        memory_bytes=256 << 20,
        disk_bytes=16 << 20,
        pids=64,
        output_bytes=2000,
        pool_size=1,
        max_sessions=100,  # the module's tests share these Sandboxes: a key each
        max_project_sessions=100,
    )
    return SandboxConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def sandboxes(run: Loop, namespace: str) -> Iterator[Sandboxes]:
    sbx = Sandboxes(config(namespace))
    run(sbx.start())
    yield sbx
    run(sbx.close())
