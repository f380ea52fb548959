"""SandboxConfig: every limit and setting of the sandbox, as explicit fields (the worker fills them)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import asyncio as aioredis


def default_owner() -> str:
    """`host/pid/random`: unique per process; embedded mode reads host and pid back to tell if it died."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass
class SandboxConfig:
    image: str = "assistd-sandbox:1"
    runtime: str | None = None  # e.g. "runsc" (gVisor); None = the engine's default runtime
    timeout_seconds: float = 60.0  # wall time per execution
    memory_bytes: int = 1 << 30
    cpus: float = 1.0
    pids: int = 128
    disk_bytes: int = 256 << 20  # size of the /mnt/data tmpfs (counts towards memory too)
    output_bytes: int = 20_000  # stdout+stderr kept per execution; the rest is cut with a marker
    idle_seconds: float = 1200.0  # a session unused this long is removed (as OpenAI: 20 min)
    pool_size: int = 2  # warm, pre-started containers waiting for new sessions
    max_sessions: int = 32  # live sessions (containers) in the namespace; a new one past it is refused
    max_project_sessions: int = 8  # live sessions of one project
    redis_url: str | None = None  # session registry; None = in this process (embedded mode)
    # opens redis_url; the worker passes core's, which also reads Sentinel URLs (the sandbox
    # imports nothing of ours)
    redis_client: Callable[[str], aioredis.Redis] = aioredis.Redis.from_url
    namespace: str = "assistd"  # Redis key prefix and container label: reapers only see their namespace
    owner: str = field(default_factory=default_owner)  # this process: labels, heartbeat
